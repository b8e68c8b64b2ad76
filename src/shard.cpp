#include "sdinterp/shard.h"

#include <charconv>
#include <string>

#include "sdinterp/errors.h"

namespace sdinterp {
namespace {

// A whole number from 0 to 1000000 (shard counts and indices), or -1.
long long whole(const std::string& text) {
  long long value = -1;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || value < 0 || value > 1000000) return -1;
  return value;
}

Shard checked(long long index, long long count, const std::string& origin, const std::string& what) {
  if (count < 1) throw ConfigError(what + ": the shard count must be at least 1");
  if (index < 0 || index >= count) {
    throw ConfigError(what + ": shard index " + std::to_string(index) + " is not below the count " +
                      std::to_string(count));
  }
  return Shard{static_cast<int>(index), static_cast<int>(count), origin};
}

}  // namespace

Shard choose_shard(const std::string& flag, int count_flag, const std::function<const char*(const char*)>& env) {
  if (!flag.empty()) {
    const auto slash = flag.find('/');
    const long long index = slash == std::string::npos ? -1 : whole(flag.substr(0, slash));
    const long long count = slash == std::string::npos ? -1 : whole(flag.substr(slash + 1));
    if (index < 0 || count < 0) {
      throw ConfigError("--shard takes I/N, this worker's index from 0 and the number of workers (e.g. 0/4), not \"" +
                        flag + "\"");
    }
    if (count_flag > 0 && count_flag != count) {
      throw ConfigError("--shard " + flag + " and --shard-count " + std::to_string(count_flag) +
                        " give different numbers of shards; give --shard alone");
    }
    return checked(index, count, "--shard", "--shard " + flag);
  }
  auto get = [&env](const char* name) {
    const char* value = env(name);
    return value == nullptr ? std::string() : std::string(value);
  };
  const std::string task = get("SLURM_ARRAY_TASK_ID"), task_count = get("SLURM_ARRAY_TASK_COUNT"),
                    task_min = get("SLURM_ARRAY_TASK_MIN"), task_max = get("SLURM_ARRAY_TASK_MAX"),
                    task_step = get("SLURM_ARRAY_TASK_STEP");
  const std::string k8s = get("JOB_COMPLETION_INDEX"), k8s_count = get(kShardCountVariable);
  const bool slurm = !task.empty() || !task_count.empty() || !task_min.empty() || !task_max.empty();
  if (slurm && !k8s.empty()) {
    throw ConfigError(
        "both a Slurm array (SLURM_ARRAY_TASK_ID) and a Kubernetes indexed job (JOB_COMPLETION_INDEX) are in "
        "the environment; pass --shard I/N to say which shard this is");
  }
  if (slurm) {
    const std::string what = "the Slurm array's environment (SLURM_ARRAY_TASK_ID=" + task + ")";
    const long long id = whole(task);
    if (id < 0) {
      throw ConfigError("SLURM_ARRAY_TASK_ID is " + (task.empty() ? std::string("not set") : "\"" + task + "\"") +
                        " while other SLURM_ARRAY_TASK_* variables are; pass --shard I/N");
    }
    const long long low = task_min.empty() ? 0 : whole(task_min);
    const long long step = task_step.empty() ? 1 : whole(task_step);
    if (low < 0 || step < 1)
      throw ConfigError(what + ": SLURM_ARRAY_TASK_MIN/STEP are not whole numbers; pass --shard I/N");
    if (task_min.empty() && task_count.empty()) {
      throw ConfigError(
          "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/MAX: "
          "cannot tell how many shards there are; pass --shard I/N");
    }
    long long count = task_count.empty() ? -1 : whole(task_count);
    if (count < 0 && !task_max.empty()) {
      const long long high = whole(task_max);
      if (high < low) throw ConfigError(what + ": SLURM_ARRAY_TASK_MAX is below SLURM_ARRAY_TASK_MIN");
      count = (high - low) / step + 1;
    }
    if (count < 0) throw ConfigError(what + ": SLURM_ARRAY_TASK_COUNT (or _MAX) is missing; pass --shard I/N");
    if (id < low || (id - low) % step != 0) {
      throw ConfigError(what + ": the task id is not in the array's range (MIN " + std::to_string(low) + ", STEP " +
                        std::to_string(step) + "); an array of a list of ids needs --shard I/N");
    }
    return checked((id - low) / step, count, "Slurm array", what);
  }
  if (!k8s.empty()) {
    const std::string what = "the Kubernetes indexed job's environment (JOB_COMPLETION_INDEX=" + k8s + ")";
    const long long index = whole(k8s);
    if (index < 0) throw ConfigError("JOB_COMPLETION_INDEX is \"" + k8s + "\", not a whole number");
    long long count = count_flag > 0 ? count_flag : -1;
    if (count < 0 && !k8s_count.empty()) {
      count = whole(k8s_count);
      if (count < 1)
        throw ConfigError(std::string(kShardCountVariable) + " is \"" + k8s_count + "\", not a whole number above 0");
    }
    if (count < 0) {
      throw ConfigError("JOB_COMPLETION_INDEX is set but not the number of shards: pass --shard-count N or set " +
                        std::string(kShardCountVariable) + " (the Job's completions)");
    }
    return checked(index, count, "Kubernetes indexed job", what);
  }
  if (count_flag > 0)
    throw ConfigError("--shard-count is for Kubernetes indexed jobs (JOB_COMPLETION_INDEX), which is not set");
  return Shard{};
}

}  // namespace sdinterp
