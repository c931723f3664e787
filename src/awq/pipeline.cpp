#include "awq/pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "awq/block_search.h"
#include "awq/gptq_block.h"
#include "awq/kept_capture.h"
#include "awq/moe_search.h"
#include "awq/resume.h"
#include "awq/shard.h"
#include "awq/writer.h"
#include "base/error.h"
#include "base/half.h"
#include "base/interrupt.h"
#include "base/progress.h"
#include "base/sysinfo.h"
#include "base/thread_pool.h"
#include "formats/checkpoint.h"
#include "kernels/bandwidth.h"
#include "kernels/gemm.h"
#include "model/block.h"
#include "model/model.h"
#include "quant/quantize.h"
#include "tokenizer/tokenizer.h"

namespace awq {
namespace fs = std::filesystem;

OutputFormat parse_output_format(const std::string& s) {
  if (s == "autoawq") return OutputFormat::AutoAwq;
  if (s == "fake-quant") return OutputFormat::FakeQuant;
  fail("--format {}: expected autoawq or fake-quant", s);
}

QuantMethod parse_method(const std::string& s) {
  for (QuantMethod m :
       {QuantMethod::Awq, QuantMethod::Rtn, QuantMethod::Gptq, QuantMethod::AwqGptq})
    if (s == method_name(m)) return m;
  fail("--method {}: expected awq, rtn, gptq or awq-gptq", s);
}

const char* method_name(QuantMethod m) {
  switch (m) {
    case QuantMethod::Awq:
      return "awq";
    case QuantMethod::Rtn:
      return "rtn";
    case QuantMethod::Gptq:
      return "gptq";
    case QuantMethod::AwqGptq:
      return "awq-gptq";
  }
  return "?";
}

bool uses_awq_scales(QuantMethod m) {
  return m == QuantMethod::Awq || m == QuantMethod::AwqGptq;
}

bool uses_gptq(QuantMethod m) {
  return m == QuantMethod::Gptq || m == QuantMethod::AwqGptq;
}

bool parse_propagate(const std::string& s) {
  if (s == "fp") return false;
  if (s == "quantized") return true;
  fail("--propagate {}: expected fp or quantized", s);
}

SearchPrecision parse_search_precision(const std::string& s) {
  if (s == "f32") return SearchPrecision::F32;
  if (s == "bf16") return SearchPrecision::Bf16;
  fail("--search-precision {}: expected f32 or bf16", s);
}

const char* search_precision_name(SearchPrecision p) {
  return p == SearchPrecision::Bf16 ? "bf16" : "f32";
}

SearchPrecision effective_search_precision(SearchPrecision asked) {
  return asked == SearchPrecision::Bf16 && kernels::bf16_products_available()
             ? SearchPrecision::Bf16
             : SearchPrecision::F32;
}

namespace {

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec1, ec2;
  const fs::path pa = fs::weakly_canonical(a, ec1), pb = fs::weakly_canonical(b, ec2);
  return !ec1 && !ec2 && pa == pb;
}

// Everything about the options and the model that can be checked before any work starts.
std::vector<std::string> validate(const QuantizeOptions& o, const ModelConfig& cfg,
                                  const ModelConfig& qcfg, const Architecture& arch) {
  std::vector<std::string> warnings;
  AWQ_CHECK(!o.out_dir.empty(), "--out is required");
  AWQ_CHECK(!same_path(o.out_dir, o.model_dir),
            "--out {} is the input model directory; the input is never "
            "modified, choose another output directory",
            o.out_dir);
  if (cfg.is_moe()) {
    AWQ_CHECK(o.pad_intermediate == 0,
              "--pad-intermediate: not supported for MoE models (model_type '{}')", cfg.model_type);
    AWQ_CHECK(!o.propagate_quantized,
              "--propagate quantized: not supported for MoE models yet (model_type '{}')",
              cfg.model_type);
    AWQ_CHECK(o.moe_min_tokens >= 0, "--moe-min-tokens must be 0 or more (got {})",
              o.moe_min_tokens);
    // Expert linears: gate/up [I, hidden], down [hidden, I] (and the shared expert's), named
    // after the first sparse layer's so that the message points at a real tensor.
    int64_t first = 0;
    while (first + 1 < cfg.num_hidden_layers && !cfg.is_moe_layer(first)) ++first;
    struct Shape {
      std::string name;
      int64_t out, in;
    };
    std::vector<Shape> shapes = {{arch.expert_linear_name(first, 0, LinearRole::Up),
                                  cfg.moe_intermediate_size, cfg.hidden_size},
                                 {arch.expert_linear_name(first, 0, LinearRole::Down),
                                  cfg.hidden_size, cfg.moe_intermediate_size}};
    if (cfg.shared_expert_intermediate_size > 0) {
      shapes.push_back({arch.shared_expert_linear_name(first, LinearRole::Up),
                        cfg.shared_expert_intermediate_size, cfg.hidden_size});
      shapes.push_back({arch.shared_expert_linear_name(first, LinearRole::Down), cfg.hidden_size,
                        cfg.shared_expert_intermediate_size});
    }
    for (const Shape& sh : shapes) {
      QuantSpec spec = o.spec;
      spec.validate(sh.in, fmt::format("{} [{} x {}] (every expert's)", sh.name, sh.out, sh.in));
      if (o.format == OutputFormat::AutoAwq)
        AWQ_CHECK(sh.out % 8 == 0,
                  "{} [{} x {}] (every expert's): the AutoAWQ GEMM format packs 8 output features "
                  "per int32 and needs a multiple of 8; use --format fake-quant",
                  sh.name, sh.out, sh.in);
    }
  }
  AWQ_CHECK(!cfg.quant,
            "{}: the model is already AWQ-quantized (config.json has a quantization_config); "
            "quantize the original float model",
            o.model_dir);
  const bool fmt_awq = o.format == OutputFormat::AutoAwq;
  AWQ_CHECK(!o.no_quantize || !fmt_awq,
            "--no-quantize writes float weights and needs --format fake-quant");
  AWQ_CHECK(o.spec.bits >= 2 && o.spec.bits <= 8, "--bits {}: the quantizer supports 2..8 bits",
            o.spec.bits);
  AWQ_CHECK(
      !fmt_awq || o.spec.bits == 4,
      "--bits {}: the AutoAWQ GEMM format (what transformers and vLLM load) is 4-bit only; use "
      "--format fake-quant for {}-bit weights",
      o.spec.bits, o.spec.bits);
  AWQ_CHECK(o.pad_intermediate >= 0, "--pad-intermediate must be positive (got {})",
            o.pad_intermediate);
  if (o.shard_count > 0) {
    AWQ_CHECK(o.method != QuantMethod::Rtn && o.load_search.empty() && o.merge_shards.empty(),
              "--shard splits an AWQ or GPTQ run; it cannot be combined with --method rtn, "
              "--load-search or merge");
    AWQ_CHECK(!o.propagate_quantized,
              "--shard with --propagate quantized: each block would need the quantized output "
              "of the one before, so the blocks cannot be searched apart; use --propagate fp");
    AWQ_CHECK(o.shard_index >= 1 && o.shard_index <= o.shard_count,
              "--shard {}/{}: expected K/N with 1 <= K <= N", o.shard_index, o.shard_count);
    AWQ_CHECK(o.shard_count <= cfg.num_hidden_layers,
              "--shard {}/{}: the model has only {} blocks to share out", o.shard_index,
              o.shard_count, cfg.num_hidden_layers);
    AWQ_CHECK(o.save_search.empty(), "--save-search: a shard holds its search results itself");
  }
  if (!uses_awq_scales(o.method)) {
    AWQ_CHECK(o.load_search.empty(),
              "--load-search replays an AWQ search; it cannot be combined with --method {}",
              method_name(o.method));
    AWQ_CHECK(o.save_search.empty(), "--save-search: --method {} searches no scales",
              method_name(o.method));
  }
  if (o.act_dtype != ActDtype::F32) {
    // GPTQ's Gram matrices and the MoE search read every capture at once: no memory to save.
    AWQ_CHECK(!uses_gptq(o.method),
              "--act-dtype {}: 16-bit activations are for --method awq (GPTQ reads the f32 "
              "captures)",
              act_dtype_name(o.act_dtype));
    AWQ_CHECK(!cfg.is_moe(), "--act-dtype {}: not supported for MoE models yet (model_type '{}')",
              act_dtype_name(o.act_dtype), cfg.model_type);
  }
  if (uses_gptq(o.method)) {
    AWQ_CHECK(!o.calib.empty() || o.calib_tokens || !o.merge_shards.empty(),
              "--calib is required for --method {}: GPTQ rounds with the calibration inputs' "
              "Gram matrices (with --load-search too)",
              method_name(o.method));
    AWQ_CHECK(!o.no_quantize, "--no-quantize keeps the weights unrounded: nothing for GPTQ");
  } else if (o.method == QuantMethod::Awq && o.load_search.empty() && o.merge_shards.empty()) {
    AWQ_CHECK(!o.calib.empty() || o.calib_tokens,
              "--calib is required for --method awq (or use --method rtn, "
              "or --load-search FILE)");
  }
  AWQ_CHECK(o.calib_samples > 0, "--calib-samples must be positive (got {})", o.calib_samples);
  AWQ_CHECK(o.calib_seqlen > 0, "--calib-seqlen must be positive (got {})", o.calib_seqlen);
  AWQ_CHECK(o.spec.f16_scales || o.format == OutputFormat::FakeQuant,
            "--scale-dtype f32: the AutoAWQ layout stores f16 scales; use --format fake-quant");
  AWQ_CHECK(o.scale_screen > 0 && o.scale_screen <= 1,
            "--scale-screen {}: expected a fraction of the calibration in (0, 1]", o.scale_screen);
  AWQ_CHECK(o.scale_finalists >= 1, "--scale-finalists {}: expected at least 1", o.scale_finalists);
  AWQ_CHECK(o.scale_keep >= 0, "--scale-keep {}: expected 0 (off) or more", o.scale_keep);
  AWQ_CHECK(o.scale_grid >= 1 && o.scale_grid <= 1000, "--scale-grid {}: expected 1..1000",
            o.scale_grid);
  // Never a silently different search across machines: the report's warnings and
  // search_precision say which arithmetic ran.
  if (uses_awq_scales(o.method) && o.load_search.empty() &&
      o.search_precision != effective_search_precision(o.search_precision))
    warnings.push_back(
        "--search-precision bf16: this CPU lacks AVX512-BF16 (or AWQ_ISA is below avx512); the "
        "scale search runs in f32");
  const int64_t seqlen = o.calib_tokens ? o.calib_tokens->seqlen : o.calib_seqlen;
  if (o.method != QuantMethod::Rtn && o.load_search.empty() && seqlen > cfg.max_position_embeddings)
    warnings.push_back(
        fmt::format("--calib-seqlen {} exceeds the model's max_position_embeddings {}", seqlen,
                    cfg.max_position_embeddings));
  std::set<std::pair<int64_t, int64_t>> warned;
  bool any_dense_mlp = false;  // a model whose every layer is sparse has no dense gate/up/down
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) any_dense_mlp |= !cfg.is_moe_layer(l);
  for (LinearRole r : kAllLinearRoles) {
    // The shapes of the tensors as written: a fused q|k|v or gate|up tensor is one linear.
    const StoredRows rows = stored_rows(qcfg, arch, r);
    if (rows.row0 != 0) continue;
    if (!any_dense_mlp && (r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down))
      continue;
    const int64_t out = rows.rows, in = linear_shape(qcfg, r).second;
    const std::string name = arch.stored_linear_name(0, r);  // every layer has the same shapes
    QuantSpec spec = o.spec;
    spec.validate(in, name);
    if (fmt_awq) {
      const bool mlp = (r == LinearRole::Gate || r == LinearRole::Up) && !arch.fused_gate_up();
      AWQ_CHECK(
          out % 8 == 0,
          "tensor '{}': {} output features; the AutoAWQ GEMM format packs 8 per int32 and needs a "
          "multiple of 8 ({})",
          name, out,
          mlp ? "use --pad-intermediate 8 (or 64 for vLLM) or --format fake-quant"
              : "use --format fake-quant");
      const int64_t g = spec.group_for(in);
      if ((out % 64 != 0 || in % 128 != 0 || in % g != 0) && warned.insert({out, in}).second) {
        warnings.push_back(
            fmt::format("tensor '{}' [{} x {}] (and its kind in every layer): vLLM's awq_marlin "
                        "kernels need out % 64 == 0 "
                        "and in % 128 == 0 per tensor-parallel shard; this shape will not split "
                        "for tensor parallelism{}",
                        name, out, in, mlp ? " (--pad-intermediate 128 pads the MLP)" : ""));
      }
    }
  }
  return warnings;
}

// Every tensor of every block exists with the expected shape (fused q|k|v and gate|up tensors
// with their stacked rows; q/k norms per head; Gemma-2/3's output norms): fail before hours of
// work.
void check_tensors(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch) {
  const int64_t d = cfg.hidden_size;
  ck.get(arch.embed_name, {cfg.vocab_size, d});
  ck.get(arch.final_norm_name, {d});
  if (!cfg.tie_word_embeddings) ck.get(arch.lm_head_name, {cfg.vocab_size, d});
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    ck.get(arch.norm_name(l, NormRole::Attn), {d});
    ck.get(arch.norm_name(l, NormRole::Mlp), {d});
    if (arch.has_qk_norm()) {
      ck.get(arch.layer_name(l, arch.q_norm_name + ".weight"), {cfg.head_dim});
      ck.get(arch.layer_name(l, arch.k_norm_name + ".weight"), {cfg.head_dim});
    }
    if (arch.has_post_norms()) {
      ck.get(arch.layer_name(l, arch.post_attn_norm_name + ".weight"), {d});
      ck.get(arch.layer_name(l, arch.post_mlp_norm_name + ".weight"), {d});
    }
    const bool sparse = cfg.is_moe_layer(l);
    for (LinearRole r : kAllLinearRoles) {
      const StoredRows rows = stored_rows(cfg, arch, r);
      if (rows.row0 != 0) continue;  // a later part of a fused tensor: checked with the first
      if (sparse && (r == LinearRole::Gate || r == LinearRole::Up || r == LinearRole::Down))
        continue;
      const std::string name = arch.stored_linear_name(l, r);
      ck.get(name + ".weight", {rows.rows, linear_shape(cfg, r).second});
      if (linear_has_bias(cfg, r)) ck.get(name + ".bias", {rows.rows});
    }
    if (!sparse) continue;
    const int64_t I = cfg.moe_intermediate_size;
    ck.get(arch.router_name(l) + ".weight", {cfg.num_experts, d});
    for (int64_t e = 0; e < cfg.num_experts; ++e) {
      ck.get(arch.expert_linear_name(l, e, LinearRole::Gate) + ".weight", {I, d});
      ck.get(arch.expert_linear_name(l, e, LinearRole::Up) + ".weight", {I, d});
      ck.get(arch.expert_linear_name(l, e, LinearRole::Down) + ".weight", {d, I});
    }
    if (!arch.moe.shared_expert.empty() && cfg.shared_expert_intermediate_size > 0) {
      const int64_t S = cfg.shared_expert_intermediate_size;
      ck.get(arch.shared_expert_linear_name(l, LinearRole::Gate) + ".weight", {S, d});
      ck.get(arch.shared_expert_linear_name(l, LinearRole::Up) + ".weight", {S, d});
      ck.get(arch.shared_expert_linear_name(l, LinearRole::Down) + ".weight", {d, S});
      ck.get(arch.shared_gate_name(l) + ".weight", {1, d});
    }
  }
}

// A sparse layer's expert linears in the writer's order: every expert's gate, up, down, then the
// shared expert's.
std::vector<const Linear*> expert_linears(const BlockWeights& w) {
  std::vector<const Linear*> v;
  for (const FfnWeights& f : w.moe.experts) v.insert(v.end(), {&f.gate, &f.up, &f.down});
  if (w.moe.shared.present())
    v.insert(v.end(), {&w.moe.shared.gate, &w.moe.shared.up, &w.moe.shared.down});
  return v;
}

// X0: the embedding rows of the calibration tokens, converted straight from the mapping and
// multiplied by the model's embedding scale (Gemma: sqrt(hidden) rounded to its dtype), exactly as
// Model::embed computes them (embed_rows).
Mat embed_tokens(const Checkpoint& ck, const ModelConfig& cfg, const Architecture& arch,
                 const std::vector<int32_t>& tokens) {
  Mat x;
  embed_rows(ck.get(arch.embed_name, {cfg.vocab_size, cfg.hidden_size}), cfg, tokens.data(),
             int64_t(tokens.size()), x, "calibration");
  return x;
}

// The weights the written model computes with: what --propagate quantized feeds the next block.
// Norms and biases go through the output's float dtype (a norm as its stored form, multiplier −
// offset), fake-quant weights through F16 (ModelWriter's forms).
BlockWeights output_weights(const BlockWeights& w, const std::vector<QuantizedMatrix>& q,
                            bool fake_quant, DType float_dtype, float norm_offset) {
  BlockWeights o = w;
  const auto round = [&](float v) { return round_to_dtype(v, float_dtype); };
  for (std::vector<float>* n :
       {&o.attn_norm, &o.mlp_norm, &o.q_norm, &o.k_norm, &o.post_attn_norm, &o.post_mlp_norm})
    for (float& v : *n) v = round(v - norm_offset) + norm_offset;
  for (LinearRole r : kAllLinearRoles) {
    Linear& l = o[r];
    if (!q.empty()) q[size_t(r)].dequantize(l.w.data.data());
    if (fake_quant || q.empty())
      for (float& v : l.w.data) v = round_to_f16(v);
    for (float& v : l.bias) v = round(v);
  }
  return o;
}

CalibBlocks calibrate(const QuantizeOptions& o, std::vector<std::string>* log) {
  const std::vector<std::string> docs = load_calib_documents(o.calib);
  const Tokenizer tok = Tokenizer::from_dir(o.model_dir);
  const std::vector<size_t> order = document_order(docs.size(), o.shuffle_seed);
  if (!tok.adds_bos())
    log->push_back("note: the tokenizer adds no BOS token; documents are concatenated without one");
  return build_calib_blocks(
      docs.size(), [&](size_t i) { return tok.encode(docs[order[i]], true); }, o.calib_samples,
      o.calib_seqlen, o.calib_long, o.calib);
}

}  // namespace

std::vector<std::string> skipped_groups(const Architecture& arch, const QuantizeOptions& o) {
  std::string names;
  for (const auto& g : arch.scaling_groups) names += (names.empty() ? "" : ", ") + g.name;
  const auto known = [&](const std::string& n) {
    for (const auto& g : arch.scaling_groups)
      if (g.name == n) return true;
    return false;
  };
  const auto listed = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  for (const auto* list : {&o.groups_off, &o.groups_on})
    for (const std::string& n : *list)
      AWQ_CHECK(known(n), "scaling group '{}' does not exist for model_type '{}' (groups: {})", n,
                arch.model_type, names);
  for (const std::string& n : o.groups_off)
    AWQ_CHECK(!listed(o.groups_on, n), "scaling group '{}' is turned both off and on", n);
  std::vector<std::string> skip;
  for (const auto& g : arch.scaling_groups)
    if ((g.off_by_default && !listed(o.groups_on, g.name)) || listed(o.groups_off, g.name))
      skip.push_back(g.name);
  return skip;
}

QuantizeReport quantize_model(const QuantizeOptions& o) {
  Timer total;
  QuantizeReport rep;
  const ModelConfig cfg = ModelConfig::load(o.model_dir);
  const Architecture& arch = *find_architecture(cfg.model_type);
  ModelConfig qcfg = cfg;  // the output's shape
  if (o.pad_intermediate > 0)
    qcfg.intermediate_size =
        (cfg.intermediate_size + o.pad_intermediate - 1) / o.pad_intermediate * o.pad_intermediate;
  rep.warnings = validate(o, cfg, qcfg, arch);
  const std::vector<std::string> skip_groups = skipped_groups(arch, o);
  for (const auto& w : rep.warnings) fmt::print(stderr, "awq: warning: {}\n", w);

  const auto ck = Checkpoint::open(o.model_dir);
  check_tensors(ck, cfg, arch);
  const bool awq = uses_awq_scales(o.method);
  const bool gptq = uses_gptq(o.method);
  const bool merge = !o.merge_shards.empty();
  const bool replay = merge || (awq && !o.load_search.empty());
  const bool search = awq && !replay;
  // The calibration goes through the blocks (capturing each linear's inputs) for a search, and
  // for GPTQ, whose rounding needs those inputs even when the scales are loaded (not in a merge:
  // the shards kept GPTQ's results).
  const bool forward = (search || gptq) && !merge;
  const bool shard = forward && o.shard_count > 0;
  const std::vector<std::string> shard_dirs =
      merge && gptq ? shard_dir_of_layers(o.merge_shards, cfg.num_hidden_layers)
                    : std::vector<std::string>();
  // A shard searches the layers of its range after forwarding the calibration through those
  // before it; the rest of the model is another shard's.
  const ShardRange range = shard ? shard_range(o.shard_index, o.shard_count, cfg.num_hidden_layers)
                                 : ShardRange{0, cfg.num_hidden_layers};
  const bool fake = o.format == OutputFormat::FakeQuant;

  rep.method = method_name(o.method);
  rep.format = fake ? (o.no_quantize ? "fake-quant (no-quantize)" : "fake-quant") : "autoawq";
  rep.model_dir = o.model_dir;
  rep.out_dir = o.out_dir;
  rep.bits = o.spec.bits;
  rep.group_size = o.spec.group_size;
  rep.zero_point = o.spec.zero_point;
  rep.f16_scales = o.spec.f16_scales;
  rep.scale_mode = scale_mode_name(o.scale_mode);
  rep.scale_loss = o.clip && o.clip_aware_search ? "clipped" : "plain";
  rep.n_layers = cfg.num_hidden_layers;
  rep.threads = num_threads();
  rep.act_dtype = act_dtype_name(o.act_dtype);

  SearchHeader header;
  header.model_type = cfg.model_type;
  header.num_layers = cfg.num_hidden_layers;
  header.hidden_size = qcfg.hidden_size;
  header.intermediate_size = qcfg.intermediate_size;
  header.bits = o.spec.bits;
  header.group_size = o.spec.group_size;
  header.zero_point = o.spec.zero_point;
  header.f16_scales = o.spec.f16_scales;
  header.clip_grid = o.clip_opts.n_grid;
  std::vector<BlockResult> loaded;
  if (merge)
    loaded = load_shards(o.merge_shards, header, arch, resume_fingerprint(o, ck, nullptr, {}));
  else if (replay)
    loaded = load_search(o.load_search, header, arch);

  // The output (its lock first: a second writer of the same --out stops here, before any work).
  StagedDir staged(o.out_dir);

  // Calibration: tokens, blocks.
  Timer t_stage;
  CalibBlocks cb;
  int64_t n_seq = 0, T = 0;
  if (forward) {
    std::vector<std::string> log;
    cb = o.calib_tokens ? *o.calib_tokens : calibrate(o, &log);
    for (const auto& l : log) fmt::print(stderr, "awq: {}\n", l);
    n_seq = cb.n_blocks;
    T = cb.seqlen;
    rep.calib_blocks = cb.n_blocks;
    rep.calib_seqlen = cb.seqlen;
    rep.calib_long = calib_long_name(cb.long_docs);
    rep.calib_docs = cb.docs_taken;
    rep.calib_docs_too_long = cb.docs_too_long;
    rep.calib_pieces = cb.pieces;
    rep.calib_tokens_read = cb.tokens_read;
    rep.calib_tokens_dropped = cb.tokens_dropped;
    if (!o.quiet)
      fmt::print("calibration: {} -> {} blocks of {} tokens\n", describe_calibration(cb), n_seq, T);
  }

  // The resume stage (a search only: that is where the hours go) and X, the activations entering
  // the first block to search: the embeddings, or those kept by an interrupted run.
  // What decides the output: the resume stage's key, and the one every shard of a command shares.
  // A run that searches or rounds with GPTQ keeps a stage (GPTQ's with its quantized linears);
  // one that replays a search is cheap to run again and keeps none.
  const bool keep_stage = forward && !replay && !shard;
  const nlohmann::ordered_json fingerprint =
      forward ? resume_fingerprint(o, ck, &cb, skip_groups) : nlohmann::ordered_json();
  std::optional<ResumeStage> stage;
  int64_t kept = 0;
  // The input of the next block, between blocks (f32 or 16 bits: --act-dtype).
  ActMat x(o.act_dtype);
  const bool compact = o.act_dtype != ActDtype::F32;
  if (keep_stage) {
    stage.emplace(o.out_dir, fingerprint, header, arch, o.resume, gptq);
    for (const auto& m : stage->messages()) fmt::print(stderr, "awq: {}\n", m);
    kept = stage->kept_blocks();
    if (kept == 0) {
      x.put(embed_tokens(ck, cfg, arch, cb.tokens), "the embeddings");
    } else if (kept < cfg.num_hidden_layers) {
      Mat xk = stage->take_activations();
      AWQ_CHECK(xk.rows == n_seq * T && xk.cols == qcfg.hidden_size,
                "{}: kept activations [{} x {}], this run needs [{} x {}]", stage->dir(), xk.rows,
                xk.cols, n_seq * T, qcfg.hidden_size);
      x.put(std::move(xk), fmt::format("{}: the kept activations", stage->dir()));
    }
    rep.resumed_blocks = kept;
  } else if (forward) {
    x.put(embed_tokens(ck, cfg, arch, cb.tokens), "the embeddings");
  }
  cb = CalibBlocks();  // the tokens are in X now
  rep.times.calib = t_stage.seconds();

  // Output.
  ModelConfig out_cfg = qcfg;
  const DType float_dtype = output_float_dtype(ck, cfg, arch);
  out_cfg.torch_dtype = torch_dtype_name(float_dtype);
  if (!fake)
    out_cfg.quant = AwqQuantConfig{o.spec.bits, o.spec.group_size, o.spec.zero_point, "gemm", {}};
  std::optional<ModelWriter> writer;  // a shard writes search results only
  if (!shard) {
    writer.emplace(staged, out_cfg, arch, !fake, float_dtype);
    t_stage.reset();
    writer->add_embeddings(ck);
    rep.times.write += t_stage.seconds();
  }

  // Candidates run concurrently when their working sets fit comfortably: small models, whose
  // narrow matrix products would otherwise leave cores idle.
  ScaleSearchOptions sopt;
  sopt.spec = o.spec;
  sopt.mode = o.scale_mode;
  sopt.clip_aware = o.clip && o.clip_aware_search;
  sopt.clip_opts = o.clip_opts;
  sopt.clip_tokens = o.clip_tokens;
  sopt.n_grid = o.scale_grid;
  if (o.scale_screen < 1.0) {
    sopt.screen_seqs = std::max<int64_t>(4, int64_t(std::ceil(double(n_seq) * o.scale_screen)));
    if (sopt.screen_seqs >= n_seq) sopt.screen_seqs = 0;
  }
  sopt.finalists = o.scale_finalists;
  sopt.keep = o.scale_keep;
  sopt.skip_groups = skip_groups;
  sopt.bf16_products = effective_search_precision(o.search_precision) == SearchPrecision::Bf16;
  if (search) {
    rep.search_precision = sopt.bf16_products ? "bf16" : "f32";
    rep.screen_seqs = sopt.screen_seqs;
    rep.finalists = sopt.screen_seqs > 0 ? sopt.finalists : 0;
    rep.keep = sopt.screen_seqs > 0 && sopt.keep < sopt.finalists ? sopt.keep : 0;
    rep.scale_grid = o.scale_grid;
    rep.clip_tokens = o.clip_tokens;
  }
  {
    const double N = double(n_seq * T);
    const double per_cand = 4.0 * (N * double(2 * qcfg.intermediate_size + 2 * qcfg.hidden_size +
                                              qcfg.q_dim() + 2 * qcfg.kv_dim()) +
                                   3.0 * double(qcfg.intermediate_size * qcfg.hidden_size));
    sopt.parallel_candidates =
        num_threads() > 1 && per_cand * num_threads() <= double(int64_t(1) << 30);
  }

  Progress progress("quantize", range.end);
  const Timer t_blocks;
  int64_t kept_now = kept;  // blocks in the resume stage
  try {
    for (int64_t layer = 0; layer < range.end; ++layer) {
      BlockResult br;
      br.layer = layer;
      // A block finished by an interrupted run: its kept result is replayed, not searched.
      const bool resumed = layer < kept;
      // A shard's layer before its range: forwarded only, to compute the range's input.
      const bool forward_only = layer < range.first;
      // The ETA extrapolates from the blocks this run searches, not the cheap ones before them.
      if (layer == std::max(kept, range.first)) progress.restart_rate(layer);
      const auto block_done = [&] {
        rep.block_times.push_back({layer, t_blocks.seconds(), progress.eta(layer + 1)});
      };
      const auto step = [&](const char* s) {
        throw_if_interrupted();
        if (o.progress)
          progress.update(layer,
                          fmt::format("layer {}/{}: {}{}", layer + 1, cfg.num_hidden_layers,
                                      resumed ? "resume, " : (forward_only ? "forward, " : ""), s));
      };
      step("load");
      t_stage.reset();
      BlockWeights w = load_block_f32(ck, cfg, arch, layer);
      if (qcfg.intermediate_size != cfg.intermediate_size)
        pad_intermediate(w, qcfg.intermediate_size);
      BlockCapture cap;
      KeptCapture kept_cap(o.act_dtype);  // cap's inputs, when kept in 16 bits
      Mat x_in, x_next;                   // the block's input and output in f32
      if (forward && !resumed) {
        step("capture");
        x_in = x.take();
        if (compact && !forward_only) keep_capture(cap, kept_cap, layer);
        block_forward(qcfg, w, x_in, n_seq, T, x_next, forward_only ? nullptr : &cap);
        // The output is rounded (in 16 bits) from f32; the input is needed again only to
        // propagate the quantized block's output.
        if (!o.propagate_quantized) {
          x_in = Mat();
          x.put(std::move(x_next), fmt::format("layer {} output", layer));
        }
        size_t bytes = x.bytes() + kept_cap.bytes();
        for (const Mat* m :
             {&cap.attn_in, &cap.o_in, &cap.mlp_in, &cap.down_in, &cap.attn_out, &cap.mlp_out})
          bytes += m->data.size() * sizeof(float);
        rep.act_bytes = std::max(rep.act_bytes, int64_t(bytes));
      }
      rep.times.capture += t_stage.seconds();
      if (forward_only) continue;  // x holds the output (a shard propagates fp)

      if (search && !resumed) {
        step("scale search");
        t_stage.reset();
        br.groups = compact ? search_kept_scales(qcfg, arch, layer, w, kept_cap, n_seq, T, sopt)
                            : search_block_scales(qcfg, arch, layer, w, cap, n_seq, T, sopt);
        for (const auto& g : br.groups) rep.search_flops += g.flops;
        if (compact) {
          apply_kept_scales(arch, layer, w, kept_cap, br.groups);
        } else {
          apply_block_scales(arch, layer, w, &cap, br.groups);
        }
        if (w.is_moe()) {
          br.expert_tokens = expert_token_counts(cap, cfg.num_experts);
          MoeSearchOptions mopt;
          mopt.scale = sopt;
          mopt.min_tokens = o.moe_min_tokens;
          br.moe_groups = search_moe_scales(qcfg, arch, layer, w, cap, n_seq, T, mopt);
          for (const auto& g : br.moe_groups) rep.search_flops += g.flops;
          apply_moe_scales(layer, w, &cap, br.moe_groups);
        }
        rep.times.scale_search += t_stage.seconds();
        kill_point(fmt::format("search:{}", layer));
        t_stage.reset();
        if (o.clip) {
          step("clip search");
          br.clips =
              compact
                  ? search_kept_clips(arch, layer, w, kept_cap, o.spec, o.clip_opts, o.clip_tokens)
                  : search_block_clips(arch, layer, w, cap, o.spec, o.clip_opts, o.clip_tokens);
          if (w.is_moe())
            br.moe_clips = search_moe_clips(qcfg, arch, layer, w, cap, o.spec, o.clip_opts,
                                            o.moe_min_tokens, o.clip_tokens);
        }
        rep.times.clip_search += t_stage.seconds();
        if (!gptq) {  // the activations are no longer needed
          cap = BlockCapture();
          kept_cap = KeptCapture(o.act_dtype);
        }
        if (shard && !gptq) {
          write_block_file(staged.tmp().string(), br);
          rep.blocks.push_back(std::move(br));
          block_done();
          continue;
        }
      } else if (replay || resumed) {
        t_stage.reset();
        br = resumed ? stage->block(layer) : loaded[size_t(layer)];
        // GPTQ rounds with the inputs the scaled weights read: scale the capture too.
        BlockCapture* scaled = gptq && !resumed && !merge ? &cap : nullptr;
        apply_block_scales(arch, layer, w, scaled, br.groups);
        AWQ_CHECK(w.is_moe() || br.moe_groups.empty(),
                  "{}: layer {} is dense but the search has "
                  "MoE groups",
                  resumed ? stage->dir() : (merge ? "the shards" : o.load_search), layer);
        if (w.is_moe()) apply_moe_scales(layer, w, scaled, br.moe_groups);
        if (!o.clip) {
          br.clips.clear();
          br.moe_clips.clear();
        }
        rep.times.scale_search += t_stage.seconds();
      }

      step("quantize");
      t_stage.reset();
      // GPTQ takes the clips as its groups' ranges (GptqClip) and compensates their error; the
      // others clamp the weights before rounding them.
      if (!gptq && !br.clips.empty()) apply_block_clips(w, br.clips, o.spec, o.clip_opts.n_grid);
      if (!gptq && !br.moe_clips.empty())
        apply_moe_clips(layer, w, br.moe_clips, o.spec, o.clip_opts.n_grid);
      if (gptq) {
        for (ClipResult& c : br.clips) fill_clip_stats(c, o.clip_opts.n_grid);
        for (ClipResult& c : br.moe_clips) fill_clip_stats(c, o.clip_opts.n_grid);
      }
      std::vector<QuantizedMatrix> q, qmoe;
      if (o.no_quantize) {           // fake-quant --no-quantize: the writer takes the float weights
      } else if (gptq && resumed) {  // GPTQ's kept linears (their calibration inputs are gone)
        q = stage->quantized(layer);
        qmoe = stage->quantized_experts(layer);
      } else if (gptq && merge) {  // the shard that ran the block kept them
        read_quantized_file(shard_dirs[size_t(layer)], layer, q, qmoe);
      } else if (gptq) {
        step("gptq");
        Timer t_gptq;
        q = gptq_block(arch, layer, w, cap, o.spec, o.gptq, br.clips, o.clip_opts.n_grid, br.gptq);
        if (w.is_moe())
          qmoe = gptq_experts(qcfg, arch, layer, w, cap, o.spec, o.gptq, o.moe_min_tokens,
                              br.moe_clips, o.clip_opts.n_grid, br.gptq);
        rep.times.gptq += t_gptq.seconds();
      } else {
        for (LinearRole r : kAllLinearRoles) {
          const Linear& l = w[r];
          if (l.out == 0) {  // a sparse layer's dense feed-forward roles: nothing to quantize
            q.emplace_back();
            continue;
          }
          q.push_back(
              quantize(l.w.data.data(), l.out, l.in, o.spec, arch.stored_linear_name(layer, r)));
        }
        if (w.is_moe()) {
          const std::vector<const Linear*> ls = expert_linears(w);
          qmoe.resize(ls.size());
          // Experts are small and many: one per task (each quantize call is then serial inside).
          parallel_for(int64_t(ls.size()), 1, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; ++i) {
              const Linear& l = *ls[size_t(i)];
              qmoe[size_t(i)] = quantize(l.w.data.data(), l.out, l.in, o.spec,
                                         fmt::format("layer {} expert linear {}", layer, i));
            }
          });
        }
      }
      cap = BlockCapture();
      kept_cap = KeptCapture(o.act_dtype);
      if (forward && !resumed && o.propagate_quantized) {
        const BlockWeights wq = output_weights(w, q, fake, float_dtype, arch.norm_offset());
        block_forward(qcfg, wq, x_in, n_seq, T, x_next);
        x_in = Mat();
        x.put(std::move(x_next), fmt::format("layer {} quantized output", layer));
      }
      rep.times.quantize += t_stage.seconds();

      step("write");
      t_stage.reset();
      if (shard) {  // a GPTQ shard: its search result and quantized linears
        write_block_file(staged.tmp().string(), br);
        write_quantized_file(staged.tmp().string(), layer, q, qmoe);
      } else {
        writer->add_block(layer, w, q, qmoe);
      }
      rep.times.write += t_stage.seconds();
      if (forward && !resumed) {
        if (stage) {
          // The stage keeps the next input in f32 (its values, when rounded to 16 bits, come
          // back exactly); taking it out of x costs a conversion in 16-bit mode, a move in f32.
          const bool last = layer + 1 == cfg.num_hidden_layers;
          Mat xs = last ? Mat() : x.take();
          stage->keep_block(br, last ? nullptr : &xs, &q, &qmoe);
          if (!last) x.put(std::move(xs), fmt::format("layer {} output", layer));
          kept_now = layer + 1;
          kill_point(fmt::format("kept:{}", layer));
        }
      }
      rep.blocks.push_back(std::move(br));
      block_done();
    }
    progress.update(range.end, "finishing");
    t_stage.reset();
    if (shard)
      write_shard_manifest(staged.path("shard.json").string(), o.shard_index, o.shard_count, range,
                           o.model_dir, fingerprint);
    else
      writer->finish(ck, o.model_dir);
    kill_point("write");
    throw_if_interrupted();
    staged.commit();
    if (stage) stage->remove();
    rep.times.write += t_stage.seconds();
  } catch (const Interrupted& e) {
    if (!stage) throw;
    // Everything kept stays; the staged output and the lock go with the unwinding.
    throw Interrupted(
        e.signal(),
        fmt::format("{}: {} of {} layers are kept in {}; the same command resumes from layer {}",
                    e.what(), kept_now, cfg.num_hidden_layers, stage->dir(), kept_now));
  }
  progress.finish();
  if (writer) rep.output_bytes = int64_t(writer->bytes_written());

  if (!o.save_search.empty()) save_search(o.save_search, header, rep.blocks);
  if (search) {
    rep.search_gflops =
        rep.times.scale_search > 0 ? rep.search_flops / rep.times.scale_search / 1e9 : 0;
    rep.sgemm_gflops = kernels::measure_sgemm_gflops();
  }
  rep.times.total = total.seconds();
  rep.peak_rss_bytes = peak_rss_bytes();
  if (!o.report_path.empty()) write_text_file_atomic(o.report_path, rep.to_json().dump(2) + "\n");
  return rep;
}

}  // namespace awq
