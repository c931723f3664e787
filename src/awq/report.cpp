#include "awq/report.h"

#include <fmt/format.h>

namespace awq {

namespace {

const GroupResult* group_of(const BlockResult& b, LinearRole r) {
  for (const auto& g : b.groups)
    for (LinearRole l : g.layers)
      if (l == r) return &g;
  return nullptr;
}

const ClipResult* clip_of(const BlockResult& b, LinearRole r) {
  for (const auto& c : b.clips)
    if (c.role == r) return &c;
  return nullptr;
}

const GptqLinearResult* gptq_of(const BlockResult& b, LinearRole r) {
  for (const auto& g : b.gptq)
    if (g.role == r && g.expert == kNoExpert) return &g;
  return nullptr;
}

}  // namespace

nlohmann::ordered_json QuantizeReport::to_json() const {
  using json = nlohmann::ordered_json;
  json j;
  j["method"] = method;
  j["format"] = format;
  j["model"] = model_dir;
  j["out"] = out_dir;
  j["bits"] = bits;
  j["group_size"] = group_size;
  j["zero_point"] = zero_point;
  j["scale_dtype"] = f16_scales ? "f16" : "f32";
  j["scale_mode"] = scale_mode;
  j["screen_seqs"] = screen_seqs;
  j["finalists"] = finalists;
  j["keep"] = keep;
  j["scale_grid"] = scale_grid;
  j["clip_tokens"] = clip_tokens;
  j["scale_loss"] = scale_loss;
  j["threads"] = threads;
  j["resumed_blocks"] = resumed_blocks;
  // tokens_dropped is the tail that did not fill a block (as before --calib-long existed); the
  // tokens read but not used also count skipped documents and what split or truncate left.
  j["calibration"] = {{"blocks", calib_blocks},
                      {"seqlen", calib_seqlen},
                      {"long_documents", calib_long},
                      {"documents", calib_docs},
                      {"documents_too_long", calib_docs_too_long},
                      {"pieces", calib_pieces},
                      {"tokens_read", calib_tokens_read},
                      {"tokens_used", calib_blocks * calib_seqlen},
                      {"tokens_dropped", calib_tokens_dropped}};
  j["seconds"] = {{"calib", times.calib},
                  {"capture", times.capture},
                  {"scale_search", times.scale_search},
                  {"clip_search", times.clip_search},
                  {"quantize", times.quantize},
                  {"gptq", times.gptq},
                  {"write", times.write},
                  {"total", times.total}};
  json bt = json::array();
  for (const auto& b : block_times)
    bt.push_back({{"layer", b.layer}, {"done_s", b.done_s}, {"eta_s", b.eta_s}});
  j["block_times"] = std::move(bt);
  j["scale_search_gflop"] = search_flops / 1e9;
  j["scale_search_gflops"] = search_gflops;
  j["sgemm_gflops"] = sgemm_gflops;
  j["search_precision"] = search_precision;
  j["act_dtype"] = act_dtype;
  j["act_bytes"] = act_bytes;
  j["peak_rss_bytes"] = peak_rss_bytes;
  j["output_bytes"] = output_bytes;
  j["warnings"] = warnings;
  json layers = json::array();
  for (const auto& b : blocks) {
    json l;
    l["layer"] = b.layer;
    json groups = json::array();
    for (const auto& g : b.groups) {
      json e;
      e["group"] = g.name;
      e["prev"] = g.prev;
      e["applied"] = g.applied;
      if (g.applied) {
        e["choice"] = g.choice.label();
        e["mode"] = g.choice.identity ? "identity" : (g.choice.duo ? "duo" : "x");
        e["alpha"] = g.choice.alpha;
        e["loss"] = g.loss;
        e["rtn_loss"] = g.rtn_loss;
        e["loss_vs_rtn"] = g.rtn_loss > 0 ? g.loss / g.rtn_loss : 1.0;
      }
      groups.push_back(std::move(e));
    }
    l["groups"] = std::move(groups);
    json linears = json::array();
    for (LinearRole r : kAllLinearRoles) {
      json e;
      e["linear"] = linear_role_name(r);
      if (const GroupResult* g = group_of(b, r); g && g->applied) e["group"] = g->name;
      if (const ClipResult* c = clip_of(b, r)) {
        e["clip_mean_shrink"] = c->mean_shrink;
        e["clip_fraction"] = c->frac_clipped;
      }
      if (const GptqLinearResult* g = gptq_of(b, r)) {
        e["gptq_rtn_loss"] = g->rtn_loss;
        e["gptq_loss"] = g->loss;
        e["gptq_loss_vs_rtn"] = g->rtn_loss > 0 ? g->loss / g->rtn_loss : 1.0;
        e["gptq_damp"] = g->damp;
        e["gptq_dead_inputs"] = g->dead;
      }
      linears.push_back(std::move(e));
    }
    l["linears"] = std::move(linears);
    // A sparse layer: the calibration tokens routed to each expert (those under
    // --moe-min-tokens were calibrated on every token instead).
    if (!b.expert_tokens.empty()) l["expert_tokens"] = b.expert_tokens;
    layers.push_back(std::move(l));
  }
  j["layers"] = std::move(layers);
  return j;
}

std::string QuantizeReport::format_table() const {
  std::string s;
  bool searched = false;  // RTN has nothing to tabulate
  for (const auto& b : blocks) searched |= !b.groups.empty() || !b.clips.empty() || !b.gptq.empty();
  if (searched) {
    s += fmt::format("{:>5} {:<10} {:<12} {:<14} {:>9} {:>11} {:>9} {:>9}\n", "layer", "linear",
                     "group", "scale", "loss/RTN", "clip shrink", "clipped", "GPTQ/RTN");
    for (const auto& b : blocks) {
      for (LinearRole r : kAllLinearRoles) {
        const GroupResult* g = group_of(b, r);
        const ClipResult* c = clip_of(b, r);
        std::string group = "-", scale = "-", rel = "-";
        if (g && g->applied) {
          group = g->name;
          scale = g->choice.label();
          rel = g->rtn_loss > 0 ? fmt::format("{:.4f}", g->loss / g->rtn_loss) : "-";
        }
        std::string shrink = "-", frac = "-";
        if (c) {
          shrink = fmt::format("{:.4f}", c->mean_shrink);
          frac = fmt::format("{:.1f}%", 100 * c->frac_clipped);
        }
        const GptqLinearResult* q = gptq_of(b, r);
        const std::string gq =
            q && q->rtn_loss > 0 ? fmt::format("{:.4f}", q->loss / q->rtn_loss) : "-";
        s += fmt::format("{:>5} {:<10} {:<12} {:<14} {:>9} {:>11} {:>9} {:>9}\n", b.layer,
                         linear_role_name(r), group, scale, rel, shrink, frac, gq);
      }
    }
  }
  if (resumed_blocks > 0)
    s += fmt::format("resumed: layers 0-{} from the kept search of an interrupted run\n",
                     resumed_blocks - 1);
  s += fmt::format(
      "time: calib {:.2f}s  capture {:.2f}s  scale search {:.2f}s  clip search {:.2f}s  quantize "
      "{:.2f}s{}  write {:.2f}s  total {:.2f}s\n",
      times.calib, times.capture, times.scale_search, times.clip_search, times.quantize,
      times.gptq > 0 ? fmt::format(" (GPTQ {:.2f}s)", times.gptq) : "", times.write, times.total);
  if (search_flops > 0)
    s += fmt::format(
        "scale search: {:.1f} GFLOP at {:.1f} GFLOP/s in {} (sgemm 1024^3 on this machine: {:.1f} "
        "GFLOP/s, {} threads)\n",
        search_flops / 1e9, search_gflops, search_precision, sgemm_gflops, threads);
  s += fmt::format("peak RSS {:.1f} MiB, output {:.1f} MiB, kept activations {:.1f} MiB ({})\n",
                   double(peak_rss_bytes) / (1 << 20), double(output_bytes) / (1 << 20),
                   double(act_bytes) / (1 << 20), act_dtype);
  return s;
}

}  // namespace awq
