#include "ops/norm_common.h"

#include "ops/torch_bridge.h"

#include <algorithm>

namespace tigon::ops {

void checkFloatTensor(const char *op, const char *name, const at::Tensor &x) {
  TORCH_CHECK_TYPE(x.is_floating_point() && x.scalar_type() != at::kDouble, op, ": ", name,
                   " must be float32, float16 or bfloat16, got ", x.scalar_type());
  TORCH_CHECK_VALUE(x.dim() >= 1, op, ": ", name, " must have at least one dimension");
}

void checkVector(const char *op, const char *name, const at::Tensor &v, const at::Tensor &x) {
  TORCH_CHECK_VALUE(v.dim() == 1 && v.size(0) == x.size(-1), op, ": ", name, " must have shape [", x.size(-1),
                    "] (the last dimension of x), got ", v.sizes());
  TORCH_CHECK_VALUE(v.device() == x.device(), op, ": ", name, " is on ", v.device(), " but x is on ", x.device());
  checkFloatTensor(op, name, v);
}

at::Tensor rowsOf(const at::Tensor &x) {
  at::Tensor r = x.reshape({-1, x.size(-1)});
  return r.stride(-1) == 1 ? r : r.contiguous();
}

std::pair<int64_t, int64_t> persistentGrid(int64_t m, const at::Device &device, int64_t perSm) {
  if (m == 0) return {1, 1};
  int64_t programs = std::max<int64_t>(1, std::min<int64_t>(m, perSm * parallelism(device)));
  int64_t rowsPer = (m + programs - 1) / programs;
  return {(m + rowsPer - 1) / rowsPer, rowsPer};
}

std::pair<int64_t, int64_t> columnBlockGrid(int64_t m, int64_t n, const at::Device &device) {
  // about 4 programs per SM with blocks of 512 columns (the tune spaces hold 256 to 1024)
  int64_t rows = std::max<int64_t>(m, 1);
  int64_t groups = std::clamp<int64_t>(4 * parallelism(device) * 512 / std::max<int64_t>(n, 1), 1, rows);
  int64_t rowsPer = (rows + groups - 1) / groups;
  return {(rows + rowsPer - 1) / rowsPer, rowsPer};
}

at::Tensor columnSum(const at::Tensor &partial, at::ScalarType type) {
  at::Tensor total = at::empty({partial.size(1)}, partial.options().dtype(type));
  runKernel(builtinModule("column_sum.tile"), "column_sum",
            {{"T", ir::dtypeName(dtypeOf(total))}, {"N", std::to_string(partial.size(1))}},
            {tensorArg(partial), tensorArg(total)}, partial.device(), partial.size(0));
  return total;
}

}  // namespace tigon::ops
