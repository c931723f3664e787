// `awq bench` on a GGUF file: the bench model built from an exported Q4_1 file computes what the
// GGUF model loader computes (the same kernels on the same codes), in every form, and run_bench
// measures it with the byte accounting of the file's tensors.
#include <gtest/gtest.h>

#include <cmath>

#include "gguf/export.h"
#include "gguf/gguf_bench.h"
#include "gguf/gguf_model.h"
#include "model/model.h"
#include "synthetic.h"
#include "test_util.h"

namespace awq::gguf {
namespace {

TEST(GgufBench, BenchModelComputesWhatTheLoaderComputesInEveryForm) {
  const auto root = test::scratch_dir("gguf_bench");
  const std::string dir = (root / "model").string(), file = (root / "model.gguf").string();
  test::write_synthetic(dir, test::SynthSpec{});  // a small AWQ checkpoint (widths of 32)
  ExportOptions eo;
  eo.model_dir = dir;
  eo.out_path = file;
  eo.progress = false;
  export_gguf(eo);

  const std::vector<int32_t> tokens = {1, 17, 42, 99, 3, 250, 7, 128, 64};
  for (BenchForm form : {BenchForm::F32, BenchForm::F16, BenchForm::W4, BenchForm::W4A8}) {
    SCOPED_TRACE(bench_form_name(form));
    const BenchModel bm = make_gguf_bench_model(file, form);
    EXPECT_EQ(bm.blocks.size(), size_t(bm.cfg.num_hidden_layers));
    LoadOptions lo;
    lo.weights =
        form == BenchForm::W4 || form == BenchForm::W4A8 ? WeightForm::W4 : WeightForm::F32;
    lo.w4a8 = form == BenchForm::W4A8;
    const Model ref = load_gguf_model(file, lo);
    BenchSession bs(bm, 16);
    Model::Session rs = ref.session(16);
    // Prefill then two decode steps, logits compared at each.
    for (size_t n : {size_t(7), size_t(1), size_t(1)}) {
      const size_t at = size_t(bs.pos());
      const std::span<const int32_t> chunk(tokens.data() + at, n);
      const std::vector<float> a = bs.feed(chunk), b = rs.feed(chunk);
      ASSERT_EQ(a.size(), b.size());
      // f16 rows change the weights by half an f16 ulp; every other form is the same arithmetic.
      const double tol = form == BenchForm::F16 ? 1e-2 : 1e-5;
      for (size_t i = 0; i < a.size(); ++i)
        ASSERT_NEAR(a[i], b[i], tol * (1 + std::fabs(b[i]))) << "at " << at << " logit " << i;
    }
  }
  // W4 runs the file's 4-bit codes: fewer bytes per token than f16 rows.
  const BenchModel w4 = make_gguf_bench_model(file, BenchForm::W4);
  const BenchModel f16 = make_gguf_bench_model(file, BenchForm::F16);
  EXPECT_LT(w4.decode_bytes().linears * 3, f16.decode_bytes().linears);

  BenchOptions bo;
  set_gguf_bench_source(bo, file);
  bo.prompt = 8;
  bo.decode = 4;
  bo.repeats = 1;
  bo.forms = {BenchForm::W4};
  bo.bandwidth_bytes = 1 << 20;
  const BenchReport r = run_bench(bo);
  ASSERT_EQ(r.rows.size(), 1u);
  EXPECT_EQ(r.source, file);
  EXPECT_GT(r.rows[0].decode_tok_s, 0);
  EXPECT_EQ(r.rows[0].bytes.total(),
            w4.decode_bytes().total() + w4.kv_cache_bytes_per_token(0, bo.decode));
}

}  // namespace
}  // namespace awq::gguf
