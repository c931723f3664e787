// Decode tokens/s of a GGUF file through the prebuilt llama.cpp inside the npm package
// node-llama-cpp, measured as `llama-bench -p 0 -n N` measures it: N single-token decode calls,
// each computing the last token's logits (here: sampling the next token greedily from them, which
// a decode needs anyway), timed together. With DEPTH > 0 the context first holds DEPTH tokens
// (evaluated untimed, as llama-bench's -d does), so decode reads that many keys and values too;
// with PROMPT > 0 each round also times the prefill of PROMPT tokens into an empty context. For
// architectures newer than the llama.cpp build at hand (qwen3moe against c392e509) and for decode
// at depth (c392e509's llama-bench has no -d). Prints one JSON line per round and test:
// {"engine", "release", "threads", "test": "tg"|"pp", "n", "depth", "seconds", "tok_s"}.
//
//   NODE_LLAMA_CPP=/path/to/node_modules/node-llama-cpp node scripts/llamacpp-decode-speed.mjs \
//       MODEL.gguf [N=64] [THREADS=2] [ROUNDS=1] [DEPTH=0] [PROMPT=0]
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const [modelPath, nArg, tArg, rArg, dArg, pArg] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: llamacpp-decode-speed.mjs MODEL.gguf [N] [THREADS] [ROUNDS] [DEPTH] [PROMPT]");
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

const n = Number(nArg ?? 64), threads = Number(tArg ?? 2), rounds = Number(rArg ?? 1);
const depth = Number(dArg ?? 0), prompt = Number(pArg ?? 0);
// maxThreads 0: the context's thread count is used as given, not shared with other contexts.
const llama = await getLlama({ gpu: false, build: "never", maxThreads: 0,
                               logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });
// The prompt and the depth go in as one batch each, as llama-bench's ubatch of 512 does.
const context = await model.createContext({
  contextSize: Math.max(n + depth, prompt) + 16, batchSize: 512, sequences: 1,
  threads: { ideal: threads, min: threads } });
const seq = context.getSequence();
const start = model.tokens.bos ?? 0;
// Context tokens: a fixed spread over the first 500 ids (what they are does not change the cost;
// 500 fits the tiniest test vocabulary).
const filler = (count) => Array.from({ length: count }, (_, i) => 1 + ((i * 7919) % 500));
const release = `${info.llamaCppGithubRepo}@${info.tag}`;
const report = (test, count, d, s) =>
  console.log(JSON.stringify({ engine: "llama.cpp (node-llama-cpp)", release, threads, test,
                               n: count, depth: d, seconds: s, tok_s: count / s }));
const seconds = (t0) => Number(process.hrtime.bigint() - t0) / 1e9;
for (let r = 0; r < rounds; ++r) {
  if (prompt > 0) {
    await seq.clearHistory();
    const t0 = process.hrtime.bigint();
    await seq.evaluateWithoutGeneratingNewTokens(filler(prompt));
    report("pp", prompt, 0, seconds(t0));
  }
  await seq.clearHistory();
  if (depth > 0) await seq.evaluateWithoutGeneratingNewTokens(filler(depth));
  let tok = start;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; ++i) {
    const out = await seq.controlledEvaluate([[tok, { generateNext: { token: true } }]]);
    tok = out[0]?.next?.token ?? start;
  }
  report("tg", n, depth, seconds(t0));
}
await context.dispose();
await model.dispose();
