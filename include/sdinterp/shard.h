// Which part of a batch this worker runs (`batch --shard I/N`, or a scheduler's array index): the
// jobs whose index among the file's job lines (blank and # lines not counted) is I modulo N. No
// torch.
#pragma once

#include <functional>
#include <string>

namespace sdinterp {

struct Shard {
  int index = 0;
  int count = 1;
  std::string origin;  // "--shard", "Slurm array", "Kubernetes indexed job"; "" when not sharded
  bool runs(int job_index) const { return job_index % count == index; }
};

// The environment variables read, for messages and the README.
constexpr const char* kShardCountVariable = "SDINTERP_SHARD_COUNT";

// The shard from `flag` ("I/N"; "" when not given), else from the environment read through `env`
// (null for an unset variable):
//   Slurm arrays: SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_MIN (and _MAX, _STEP) or
//     SLURM_ARRAY_TASK_COUNT: index (ID - MIN) / STEP, count COUNT or (MAX - MIN) / STEP + 1;
//   Kubernetes indexed jobs: JOB_COMPLETION_INDEX with the count from `count_flag` (> 0) or
//     SDINTERP_SHARD_COUNT.
// Neither: one shard. A half-given or inconsistent environment throws ConfigError saying what is
// missing (never a silent run of every job).
Shard choose_shard(const std::string& flag, int count_flag, const std::function<const char*(const char*)>& env);

}  // namespace sdinterp
