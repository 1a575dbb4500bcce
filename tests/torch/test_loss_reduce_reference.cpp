// loss_reduce.tile in the interpreter against LibTorch: the loss setup (count of rows not
// ignored, the mean's gradient scale, the bad-target counter cleared), the reduction of the
// per-row losses, and the in-place scale that skips g == 1. Small blocks (32 elements), so the
// loops take several steps and end on a partial block.
#include "tests/torch/torch_reference.h"

using namespace tigon;
using namespace tigon::testing;

namespace {

const Bindings kSmall = {{"PER_THREAD", "1"}, {"WARPS", "1"}};

}  // namespace

TEST_CASE("loss_reduce.tile: loss_setup and loss_reduce match torch's count, sum and mean") {
  torch::manual_seed(7);
  const TileModule &mod = builtinModule("loss_reduce.tile");
  ir::Function setup = specialize(mod, "loss_setup", kSmall), reduce = specialize(mod, "loss_reduce", kSmall);
  for (int64_t bt : {1, 31, 32, 33, 100})
    for (int64_t ignore : {-100, 0, 5})
      for (int mean : {0, 1}) {
        CAPTURE(bt);
        CAPTURE(ignore);
        CAPTURE(mean);
        // about a third ignored; with ignore_index 0, the rows past the end (read as 0) must not count
        torch::Tensor target = torch::randint(0, 9, {bt}, torch::kInt64);
        target.masked_fill_(torch::rand({bt}) < 0.33, ignore);
        torch::Tensor stats = poisoned({2}, ir::DType::F32), error = poisoned({1}, ir::DType::I32);
        interpret(setup, {arg(target, ir::DType::I64), KernelArg::ofInt(ignore), KernelArg::ofInt(mean),
                          arg(stats, ir::DType::F32), arg(error, ir::DType::I32)});
        int64_t n = target.ne(ignore).sum().item<int64_t>();
        CHECK(stats[1].item<float>() == float(n));
        CHECK(stats[0].item<float>() == (mean ? 1.0f / float(std::max<int64_t>(n, 1)) : 1.0f));
        CHECK(error[0].item<int>() == 0);

        // as the loss kernels write them: 0 for ignored rows
        torch::Tensor rows = (torch::rand({bt}) * 5).masked_fill_(target == ignore, 0), loss = poisoned({1}, ir::DType::F32);
        interpret(reduce, {arg(rows, ir::DType::F32), arg(stats, ir::DType::F32), KernelArg::ofInt(mean),
                           arg(loss, ir::DType::F32)});
        torch::Tensor total = rows.to(torch::kFloat64).sum();
        double ref = (mean ? total / double(n) : total).item<double>();
        if (mean && n == 0) CHECK(std::isnan(loss[0].item<float>()));  // 0 / 0, as torch's mean of nothing
        else CHECK(std::abs(loss[0].item<double>() - ref) <= 1e-6 * std::abs(ref));
      }
  // every row ignored: the mean is NaN and the gradient's scale 1 (every gradient row is 0)
  torch::Tensor target = torch::full({40}, -100, torch::kInt64), rows = torch::zeros({40});
  torch::Tensor stats = poisoned({2}, ir::DType::F32), error = poisoned({1}, ir::DType::I32), loss = poisoned({1}, ir::DType::F32);
  interpret(setup, {arg(target, ir::DType::I64), KernelArg::ofInt(-100), KernelArg::ofInt(1), arg(stats, ir::DType::F32),
                    arg(error, ir::DType::I32)});
  interpret(reduce, {arg(rows, ir::DType::F32), arg(stats, ir::DType::F32), KernelArg::ofInt(1), arg(loss, ir::DType::F32)});
  CHECK(stats[0].item<float>() == 1.0f);
  CHECK(stats[1].item<float>() == 0.0f);
  CHECK(std::isnan(loss[0].item<float>()));
}

TEST_CASE("loss_reduce.tile: scale_unless_one scales in place, rounded once, and leaves g == 1 alone") {
  torch::manual_seed(8);
  const TileModule &mod = builtinModule("loss_reduce.tile");
  for (ir::DType dt : kFloatTypes) {
    Bindings b = kSmall;
    b["T"] = ir::dtypeName(dt);
    ir::Function f = specialize(mod, "scale_unless_one", b);
    for (float g : {1.0f, 0.37f, 3.0f, 0.0f})
      for (auto [m, n] : {std::pair<int64_t, int64_t>{1, 1}, {1, 100}, {5, 33}, {3, 64}})
        for (int64_t programs : {1, 2, 1000}) {  // each program walks several blocks, or one
        CAPTURE(ir::dtypeName(dt));
        CAPTURE(g);
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(programs);
        // rows of a wider tensor (row stride 80 + n): the columns past n must stay as they are
        torch::Tensor base = torch::randn({m, n + 80}).to(torchType(dt)), x = base.narrow(1, 0, n);
        torch::Tensor before = base.clone(), gt = torch::full({1}, g);
        interpret(f, {arg(x, dt), arg(gt, ir::DType::F32), KernelArg::ofInt(programs)});
        torch::Tensor want = (before.narrow(1, 0, n).to(torch::kFloat32) * g).to(torchType(dt));
        CHECK(torch::equal(x, want));
        CHECK(torch::equal(base.narrow(1, n, 80), before.narrow(1, n, 80)));
        if (g == 1.0f) CHECK(torch::equal(base, before));
        }
  }
}
