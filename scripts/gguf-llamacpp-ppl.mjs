// llama-perplexity's number for a GGUF file, computed through the prebuilt llama.cpp inside the
// npm package node-llama-cpp (for architectures newer than the llama.cpp build at hand, e.g.
// qwen3 and gemma3 against c392e509). Same convention as `llama-perplexity -c CTX` and
// `awq eval --convention llamacpp`: tokenize the whole text with BOS, cut non-overlapping chunks of
// CTX tokens, overwrite each chunk's first token with BOS (where the vocabulary adds one), score the second half (positions
// CTX/2 .. CTX-2 predict the next token); prints `PPL = x +/- err` and the llama.cpp release.
//
//   NODE_LLAMA_CPP=/path/to/node_modules/node-llama-cpp node scripts/gguf-llamacpp-ppl.mjs \
//       MODEL.gguf TEXT.txt [CTX=512] [MAX_CHUNKS]
//
// Install without build scripts (they would try GitHub): npm install --ignore-scripts
// node-llama-cpp @node-llama-cpp/linux-x64 (the prebuilt CPU binaries).
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const [modelPath, textPath, ctxArg, maxArg] = process.argv.slice(2);
if (!modelPath || !textPath) {
  console.error("usage: gguf-llamacpp-ppl.mjs MODEL.gguf TEXT.txt [CTX] [MAX_CHUNKS]");
  process.exit(2);
}
const pkg = process.env.NODE_LLAMA_CPP;
if (!pkg) {
  console.error("set NODE_LLAMA_CPP to the node-llama-cpp package directory");
  process.exit(2);
}
const { getLlama, LlamaLogLevel } = await import(
  url.pathToFileURL(path.join(pkg, "dist", "index.js")).href);
const info = JSON.parse(fs.readFileSync(path.join(pkg, "llama", "llama.cpp.info.json"), "utf8"));

const nCtx = Number(ctxArg ?? 512);
const maxChunks = maxArg ? Number(maxArg) : Infinity;
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: nCtx, batchSize: nCtx, sequences: 1 });
const seq = context.getSequence();

// As llama-perplexity: BOS only where the vocabulary asks for it (tokenizer.ggml.add_bos_token).
const bos = model.tokens.shouldPrependBosToken ? model.tokens.bos : null;
const tokens = model.tokenize(fs.readFileSync(textPath, "utf8"), false);
if (bos != null) tokens.unshift(bos);
const nChunks = Math.min(Math.floor(tokens.length / nCtx), maxChunks);
const first = nCtx / 2;
let nll = 0, nll2 = 0, count = 0;
for (let c = 0; c < nChunks; ++c) {
  const chunk = tokens.slice(c * nCtx, (c + 1) * nCtx);
  if (bos != null) chunk[0] = bos;
  await seq.clearHistory();
  // The unscored first half in one call, then the scored positions a few at a time: each result
  // holds a full-vocabulary logits map, so they are consumed and dropped as they come.
  await seq.controlledEvaluate(chunk.slice(0, first));
  const step = 8;
  for (let j0 = first; j0 < nCtx - 1; j0 += step) {
    const j1 = Math.min(j0 + step, nCtx - 1);
    const input = chunk.slice(j0, j1).map((t) => [t, { generateNext: { logits: true } }]);
    const out = await seq.controlledEvaluate(input);
    for (let j = j0; j < j1; ++j) {
      const next = out[j - j0].next;
      const maxLogit = next.logits.values().next().value;  // the map is sorted, largest first
      let z = 0;
      for (const v of next.logits.values()) z += Math.exp(v - maxLogit);
      const lp = next.logits.get(chunk[j + 1]) - maxLogit - Math.log(z);
      nll += -lp;
      nll2 += lp * lp;
      ++count;
    }
  }
  const mean = nll / count;
  console.error(`[${c + 1}/${nChunks}] ${Math.exp(mean).toFixed(4)}`);
}
// llama-perplexity's estimate: PPL = exp(mean), error sqrt(var/(n-1)) * PPL.
const mean = nll / count;
const variance = nll2 / count - mean * mean;
const ppl = Math.exp(mean);
const err = count > 1 ? Math.sqrt(variance / (count - 1)) * ppl : 0;
console.log(`llama.cpp ${info.llamaCppGithubRepo}@${info.tag} (node-llama-cpp): ` +
  `${count} predictions in ${nChunks} chunks, Final estimate: PPL = ${ppl.toFixed(4)} +/- ${err.toFixed(5)}`);
await context.dispose();
await model.dispose();
