// awq merge: the shards of `awq quantize --shard K/N` (searched on any number of machines)
// assembled into the checkpoint one run would have written, byte for byte.
#include <fmt/format.h>

#include "awq/pipeline.h"
#include "awq/shard.h"
#include "base/interrupt.h"
#include "cli/commands.h"

namespace awq::cli {
namespace {

struct MergeArgs {
  std::vector<std::string> shards;
  std::string model, out, report;
  int threads = 0;
};

Registration reg([](CLI::App& app) {
  auto a = std::make_shared<MergeArgs>();
  auto* sub = app.add_subcommand(
      "merge", "Assemble the shards of awq quantize --shard K/N into the quantized checkpoint");
  sub->add_option("shards", a->shards, "Every shard directory (any order)")->required();
  sub->add_option("--out", a->out, "Output directory (written atomically)")->required();
  sub->add_option("--model", a->model,
                  "The model directory, where it is not the path the shards recorded (another "
                  "machine); it must hold the same files");
  sub->add_option("--report", a->report, "Write a JSON report");
  add_threads_option(sub, &a->threads);
  set_run(sub, [a] {
    apply_threads(a->threads);
    QuantizeOptions o = merge_options(a->shards, a->model, a->out);
    o.report_path = a->report;
    const InterruptScope interrupts;
    const QuantizeReport r = quantize_model(o);
    fmt::print("{}", r.format_table());
    fmt::print("wrote {} from {} shards ({}, {}-bit, group {}{})\n", o.out_dir, a->shards.size(),
               r.format, r.bits, r.group_size, r.zero_point ? "" : ", symmetric");
  });
});

}  // namespace
}  // namespace awq::cli
