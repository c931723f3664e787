#include "tiny_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "base/files.h"
#include "base/half.h"
#include "formats/checkpoint_writer.h"

namespace awq::test {

TinyWeights write_tiny_model(const std::filesystem::path& dir, const TinySpec& s) {
  std::mt19937 rng(s.seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  TinyWeights w;
  std::vector<std::pair<std::string, std::vector<int64_t>>> order;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float scale,
                 float offset = 0.0f) {
    int64_t n = 1;
    for (auto d : shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) {
      x = offset + scale * normal(rng);
      if (s.dtype == DType::F16) x = round_to_f16(x);
      if (s.dtype == DType::BF16) x = bf16_to_f32(f32_to_bf16(x));
    }
    w[name] = std::move(v);
    order.emplace_back(name, std::move(shape));
  };
  const int64_t d = s.hidden, f = s.inter, hd = s.head_dim(), qd = s.heads * hd,
                kvd = s.kv_heads * hd;
  add("model.embed_tokens.weight", {s.vocab, d}, 1.0f);
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    add(p + "input_layernorm.weight", {d}, 0.1f, 1.0f);
    add(p + "self_attn.q_proj.weight", {qd, d}, 1.0f / std::sqrt(float(d)));
    add(p + "self_attn.k_proj.weight", {kvd, d}, 1.0f / std::sqrt(float(d)));
    add(p + "self_attn.v_proj.weight", {kvd, d}, 1.0f / std::sqrt(float(d)));
    if (s.qkv_bias) {
      add(p + "self_attn.q_proj.bias", {qd}, 0.3f);
      add(p + "self_attn.k_proj.bias", {kvd}, 0.3f);
      add(p + "self_attn.v_proj.bias", {kvd}, 0.3f);
    }
    add(p + "self_attn.o_proj.weight", {d, qd}, 1.0f / std::sqrt(float(qd)));
    add(p + "post_attention_layernorm.weight", {d}, 0.1f, 1.0f);
    add(p + "mlp.gate_proj.weight", {f, d}, 1.0f / std::sqrt(float(d)));
    add(p + "mlp.up_proj.weight", {f, d}, 1.0f / std::sqrt(float(d)));
    add(p + "mlp.down_proj.weight", {d, f}, 1.0f / std::sqrt(float(f)));
  }
  add("model.norm.weight", {d}, 0.1f, 1.0f);
  if (!s.tie) add("lm_head.weight", {s.vocab, d}, 1.0f / std::sqrt(float(d)));

  StagedDir out(dir.string());
  {
    CheckpointWriter cw(out);
    for (const auto& [name, shape] : order) cw.add_f32_as(name, s.dtype, shape, w[name]);
    cw.finish();
  }
  nlohmann::json cfg = {
      {"model_type", s.model_type},
      {"architectures", {s.model_type == "qwen2" ? "Qwen2ForCausalLM" : "LlamaForCausalLM"}},
      {"hidden_size", d},
      {"intermediate_size", f},
      {"num_hidden_layers", s.layers},
      {"num_attention_heads", s.heads},
      {"num_key_value_heads", s.kv_heads},
      {"vocab_size", s.vocab},
      {"max_position_embeddings", 256},
      {"rms_norm_eps", s.eps},
      {"rope_theta", s.theta},
      {"tie_word_embeddings", s.tie},
      {"hidden_act", "silu"},
      {"bos_token_id", 1},
      {"eos_token_id", 2},
      {"torch_dtype", "float32"}};
  if (s.model_type == "llama" && s.qkv_bias) cfg["attention_bias"] = true;
  write_text_file_atomic(out.path("config.json").string(), cfg.dump(2));
  out.commit();
  return w;
}

namespace {

using Vec = std::vector<double>;

Vec matvec(const std::vector<float>& W, int64_t out, int64_t in, const Vec& x,
           const std::vector<float>* bias) {
  Vec y(static_cast<size_t>(out));
  for (int64_t o = 0; o < out; ++o) {
    double s = bias ? (*bias)[size_t(o)] : 0.0;
    for (int64_t i = 0; i < in; ++i) s += double(W[size_t(o * in + i)]) * x[size_t(i)];
    y[size_t(o)] = s;
  }
  return y;
}

Vec rms(const Vec& x, const std::vector<float>& w, double eps) {
  double ss = 0;
  for (double v : x) ss += v * v;
  const double inv = 1.0 / std::sqrt(ss / double(x.size()) + eps);
  Vec y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * inv * w[i];
  return y;
}

// HF's rotate_half: q*cos + rotate_half(q)*sin with rotate_half(x) = [-x2, x1].
void rope(double* x, int64_t hd, int64_t pos, double theta) {
  const int64_t half = hd / 2;
  Vec c(static_cast<size_t>(hd)), sn(static_cast<size_t>(hd)), rot(static_cast<size_t>(hd)),
      in(x, x + hd);
  for (int64_t i = 0; i < hd; ++i) {
    const double inv_freq = std::pow(theta, -double(2 * (i % half)) / double(hd));
    c[size_t(i)] = std::cos(double(pos) * inv_freq);
    sn[size_t(i)] = std::sin(double(pos) * inv_freq);
    rot[size_t(i)] = i < half ? -in[size_t(i + half)] : in[size_t(i - half)];
  }
  for (int64_t i = 0; i < hd; ++i)
    x[i] = in[size_t(i)] * c[size_t(i)] + rot[size_t(i)] * sn[size_t(i)];
}

}  // namespace

std::vector<std::vector<double>> naive_logits(const TinySpec& s, const TinyWeights& w,
                                              const std::vector<int32_t>& tokens) {
  const int64_t T = int64_t(tokens.size()), d = s.hidden, f = s.inter, hd = s.head_dim();
  const int64_t qd = s.heads * hd, kvd = s.kv_heads * hd, rep = s.heads / s.kv_heads;
  const bool bias = s.qkv_bias;
  std::vector<Vec> x(static_cast<size_t>(T));
  for (int64_t t = 0; t < T; ++t) {
    const auto& e = w.at("model.embed_tokens.weight");
    x[size_t(t)] = Vec(e.begin() + tokens[size_t(t)] * d, e.begin() + (tokens[size_t(t)] + 1) * d);
  }
  for (int64_t l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    auto W = [&](const std::string& n) -> const std::vector<float>& { return w.at(p + n); };
    std::vector<Vec> q(static_cast<size_t>(T)), k(static_cast<size_t>(T)),
        v(static_cast<size_t>(T));
    for (int64_t t = 0; t < T; ++t) {
      const Vec xn = rms(x[size_t(t)], W("input_layernorm.weight"), s.eps);
      q[size_t(t)] = matvec(W("self_attn.q_proj.weight"), qd, d, xn,
                            bias ? &W("self_attn.q_proj.bias") : nullptr);
      k[size_t(t)] = matvec(W("self_attn.k_proj.weight"), kvd, d, xn,
                            bias ? &W("self_attn.k_proj.bias") : nullptr);
      v[size_t(t)] = matvec(W("self_attn.v_proj.weight"), kvd, d, xn,
                            bias ? &W("self_attn.v_proj.bias") : nullptr);
      for (int64_t h = 0; h < s.heads; ++h) rope(q[size_t(t)].data() + h * hd, hd, t, s.theta);
      for (int64_t h = 0; h < s.kv_heads; ++h) rope(k[size_t(t)].data() + h * hd, hd, t, s.theta);
    }
    for (int64_t t = 0; t < T; ++t) {
      Vec att(static_cast<size_t>(qd), 0.0);
      for (int64_t h = 0; h < s.heads; ++h) {
        const int64_t g = h / rep;
        Vec sc(static_cast<size_t>(t + 1));
        double mx = -1e300;
        for (int64_t j = 0; j <= t; ++j) {
          double dot = 0;
          for (int64_t i = 0; i < hd; ++i)
            dot += q[size_t(t)][size_t(h * hd + i)] * k[size_t(j)][size_t(g * hd + i)];
          sc[size_t(j)] = dot / std::sqrt(double(hd));
          mx = std::max(mx, sc[size_t(j)]);
        }
        double sum = 0;
        for (auto& e : sc) sum += (e = std::exp(e - mx));
        for (int64_t j = 0; j <= t; ++j)
          for (int64_t i = 0; i < hd; ++i)
            att[size_t(h * hd + i)] += sc[size_t(j)] / sum * v[size_t(j)][size_t(g * hd + i)];
      }
      const Vec o = matvec(W("self_attn.o_proj.weight"), d, qd, att, nullptr);
      for (int64_t i = 0; i < d; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
    }
    for (int64_t t = 0; t < T; ++t) {
      const Vec xn = rms(x[size_t(t)], W("post_attention_layernorm.weight"), s.eps);
      Vec g = matvec(W("mlp.gate_proj.weight"), f, d, xn, nullptr);
      const Vec u = matvec(W("mlp.up_proj.weight"), f, d, xn, nullptr);
      for (int64_t i = 0; i < f; ++i)
        g[size_t(i)] = g[size_t(i)] / (1.0 + std::exp(-g[size_t(i)])) * u[size_t(i)];
      const Vec o = matvec(W("mlp.down_proj.weight"), d, f, g, nullptr);
      for (int64_t i = 0; i < d; ++i) x[size_t(t)][size_t(i)] += o[size_t(i)];
    }
  }
  std::vector<Vec> logits;
  const auto& head = w.at(s.tie ? "model.embed_tokens.weight" : "lm_head.weight");
  for (int64_t t = 0; t < T; ++t)
    logits.push_back(
        matvec(head, s.vocab, d, rms(x[size_t(t)], w.at("model.norm.weight"), s.eps), nullptr));
  return logits;
}

double rel_err(const float* a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - b[i]));
    den = std::max(den, std::abs(b[i]));
  }
  return num / den;
}

double rel_err(const float* a, const float* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}

}  // namespace awq::test
