// The CPU kernel layer of awq.cpp: every matrix product the model runs, for every weight type.
// Each kernel has a scalar reference (reference.h) and SIMD variants per instruction set, chosen
// once at start-up (isa.h).
#pragma once
#include "kernels/bandwidth.h"
#include "kernels/gemm.h"
#include "kernels/isa.h"
#include "kernels/q8.h"
#include "kernels/w4.h"
