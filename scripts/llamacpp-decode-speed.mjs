// Decode tokens/s of a GGUF file through the prebuilt llama.cpp inside the npm package
// node-llama-cpp, measured as `llama-bench -p 0 -n N` measures it: from an empty context, N
// single-token decode calls, each computing the last token's logits (here: sampling the next
// token greedily from them, which a decode needs anyway), timed together. For architectures newer
// than the llama.cpp build at hand (qwen3moe against c392e509). Prints one JSON line per round:
// {"engine", "release", "threads", "n", "seconds", "tok_s"}.
//
//   NODE_LLAMA_CPP=/path/to/node_modules/node-llama-cpp node scripts/llamacpp-decode-speed.mjs \
//       MODEL.gguf [N=64] [THREADS=2] [ROUNDS=1]
import fs from "node:fs";
import path from "node:path";
import url from "node:url";

const [modelPath, nArg, tArg, rArg] = process.argv.slice(2);
if (!modelPath) {
  console.error("usage: llamacpp-decode-speed.mjs MODEL.gguf [N] [THREADS] [ROUNDS]");
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
// maxThreads 0: the context's thread count is used as given, not shared with other contexts.
const llama = await getLlama({ gpu: false, build: "never", maxThreads: 0,
                               logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });
const context = await model.createContext({ contextSize: n + 16, batchSize: 16, sequences: 1,
                                            threads: { ideal: threads, min: threads } });
const seq = context.getSequence();
const start = model.tokens.bos ?? 0;
for (let r = 0; r < rounds; ++r) {
  await seq.clearHistory();
  let tok = start;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; ++i) {
    const out = await seq.controlledEvaluate([[tok, { generateNext: { token: true } }]]);
    tok = out[0]?.next?.token ?? start;
  }
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ engine: "llama.cpp (node-llama-cpp)",
                               release: `${info.llamaCppGithubRepo}@${info.tag}`, threads, n,
                               seconds: s, tok_s: n / s }));
}
await context.dispose();
await model.dispose();
