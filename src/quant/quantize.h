// Group quantization of a weight W [out, in] (row-major f32, as Hugging Face stores it), as
// AutoAWQ's pseudo_quantize_tensor (awq-spec §2) with one deliberate difference: the scale is
// rounded to f16 before the codes are chosen, so the f16 scales a file stores reproduce the
// fake-quantized weights bit-exactly.
//
// Asymmetric (zero_point):  scale = f16(max(max - min, 1e-5) / (2^b - 1))
//                           zero  = clamp(-round(min / scale), 0, 2^b - 1)
//                           q     = clamp(round(w / scale) + zero, 0, 2^b - 1)
// Symmetric:                scale = f16(max(max|w|, 1e-5) / (2^(b-1) - 1)), zero = 2^(b-1)
//                           q     = clamp(round(w / scale), -2^(b-1), 2^(b-1) - 1) + zero
// round is half-to-even (torch.round). Because the zero is clamped to the code range, 0 is
// always representable and a group whose values all have one sign saturates at its far end
// (e.g. min 1, max 2 -> every code 15, dequantized to ~1): reproduced for parity.
#pragma once
#include <cstdint>
#include <string>

#include "quant/quant_spec.h"
#include "quant/quantized_matrix.h"

namespace awq {

// Codes, scales and zeros of W. Throws awq::Error naming `tensor` for an invalid spec, a NaN or
// infinity in W (with its row and column), or a scale beyond the f16 range.
QuantizedMatrix quantize(const float* w, int64_t out, int64_t in, const QuantSpec& spec,
                         const std::string& tensor);

// W <- dequant(quant(W)) in place, bit-identical to quantize() followed by dequantize(): the
// inner loop of the AWQ scale search. Same errors as quantize() (W is then partly rewritten).
void fake_quantize(float* w, int64_t out, int64_t in, const QuantSpec& spec,
                   const std::string& tensor = "fake_quantize");

}  // namespace awq
