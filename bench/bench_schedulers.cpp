// Scheduler overhead per denoising step on a [2, 4, 64, 64] latent (CFG batch of a 512x512
// image), without a model: what the sampler pays on top of the UNet.
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include "sdinterp/schedulers.h"

namespace sdinterp {
namespace {

// One iteration is a whole run: a fresh scheduler, then scale_model_input and step for every
// model call (a run's history cannot be replayed). Items are model calls, so the reported
// items/s is the step rate.
void BM_Run(benchmark::State& state, SchedulerKind kind) {
  c10::InferenceMode inference;  // as in the sampler: no autograd bookkeeping
  const int steps = static_cast<int>(state.range(0));
  torch::manual_seed(0);
  const torch::Tensor start = torch::randn({2, 4, 64, 64});
  const torch::Tensor model_output = torch::randn({2, 4, 64, 64});
  size_t calls = 0;
  for (auto _ : state) {
    const auto scheduler = make_scheduler(kind, NoiseSchedule{}, steps);
    torch::Tensor x = start * scheduler->init_noise_sigma();
    for (size_t i = 0; i < scheduler->num_model_calls(); ++i) {
      benchmark::DoNotOptimize(scheduler->scale_model_input(x, i));
      x = scheduler->step(model_output, i, x);
    }
    benchmark::DoNotOptimize(x);
    calls += scheduler->num_model_calls();
  }
  state.SetItemsProcessed(static_cast<int64_t>(calls));
}

void BM_MakeScheduler(benchmark::State& state, SchedulerKind kind) {
  for (auto _ : state) benchmark::DoNotOptimize(make_scheduler(kind, NoiseSchedule{}, 15));
}

BENCHMARK_CAPTURE(BM_Run, lms, SchedulerKind::kLms)->Arg(15)->Arg(50)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Run, euler, SchedulerKind::kEuler)->Arg(15)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Run, ddim, SchedulerKind::kDdim)->Arg(15)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Run, pndm, SchedulerKind::kPndm)->Arg(15)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_Run, dpmpp_2m, SchedulerKind::kDpmpp2m)->Arg(15)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_MakeScheduler, lms_karras, SchedulerKind::kLmsKarras)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_MakeScheduler, dpmpp_2m_karras, SchedulerKind::kDpmpp2mKarras)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace sdinterp

BENCHMARK_MAIN();
