// What the row-wise ops (norms, SwiGLU) share: input checks, the (rows, N) view, and the
// size of the persistent backward grid and the sum of its per-program partials.
#pragma once
#include <ATen/ATen.h>

#include <optional>

namespace tigon::ops {

// x is f32, f16 or bf16 with at least one dimension; TypeError/ValueError otherwise.
void checkFloatTensor(const char *op, const char *name, const at::Tensor &x);
// A 1-D parameter of size n on x's device (weight, bias).
void checkVector(const char *op, const char *name, const at::Tensor &v, const at::Tensor &x);

// x as (M, N) rows with a contiguous last dimension (a copy only when it is strided).
at::Tensor rowsOf(const at::Tensor &x);

// How many programs a persistent kernel over M rows gets with `perSm` programs per SM (a
// backward: 4, enough to hide memory latency, few enough that their per-program partial sums,
// programs x N floats, stay small). Returns {programs, rows per program}.
std::pair<int64_t, int64_t> persistentGrid(int64_t m, const at::Device &device, int64_t perSm);
// Each backward program writes a partial row that the reduce kernel then walks (16 per SM for
// small rows made that walk 2112 rows long).
constexpr int64_t kBackwardProgramsPerSm = 4;

// How many row groups a backward kernel over column blocks (grid (groups, column blocks)) gets
// for M rows of N columns: about 4 programs per SM in all. Returns {groups, rows per group}.
std::pair<int64_t, int64_t> columnBlockGrid(int64_t m, int64_t n, const at::Device &device);

// The column sums of a backward kernel's partials (programs, N) f32, as a new (N,) tensor of
// `type` (column_sum.tile: deterministic, no atomics).
at::Tensor columnSum(const at::Tensor &partial, at::ScalarType type);

}  // namespace tigon::ops
