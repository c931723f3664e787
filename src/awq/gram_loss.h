// The scale search's loss for a group whose inspected module is one linear (v -> o, up -> down):
// for a candidate weight W' the loss is mean_{t,o} ((x_t · (W' - W)_o)^2), which equals
// tr(D G D^T) / (tokens · out) with D = W' - W and G = X^T X. Once G is built (tokens · in^2
// multiply-adds) a candidate costs out · in^2 instead of tokens · in · out: when in is below the
// token count every candidate is cheaper, and the search can score all of them on all the data
// instead of screening them on a subset.
#pragma once
#include <cstdint>
#include <vector>

#include "base/mat.h"
#include "base/row_source.h"

namespace awq {

struct InputGram {
  int64_t in = 0, tokens = 0;
  std::vector<float> g;  // [in, in], symmetric; accumulated in double, stored rounded
};

// G = X^T X of x [tokens, in]: f32 products over chunks of tokens (in L2), chunk sums added in
// double in chunk order (bit-identical for any thread count). Not the clip search's Gram kernel
// (qk::KernelTable::gram): that one is all-double and single-threaded per call, made for groups
// of <= 1024 channels; here `in` is a whole layer width (2048 for TinyLlama's o_proj), where the
// panel sgemm on both cores is ~50x faster.
InputGram input_gram(const Mat& x);
// The same from rows read a chunk at a time (x never whole in f32): the same bits.
InputGram input_gram(const RowSource& x);

// The same sums kept in double ([in, in], both triangles): GPTQ's Hessian (quant/gptq.h).
std::vector<double> input_gram_f64(const Mat& x);

// mean over tokens and rows of (x_t · d_o)^2 for d [out, in], from G (in double after the
// product d · G).
double gram_loss(const InputGram& g, const Mat& d);

// Multiply-adds of scoring `n_cand` candidates of a linear [out, in] on `tokens` inputs through
// the Gram matrix (build included), and directly (`evals` forwards of all the tokens).
double gram_search_cost(int64_t tokens, int64_t in, int64_t out, int64_t n_cand);
double direct_search_cost(int64_t tokens, int64_t in, int64_t out, double evals);

}  // namespace awq
