#include <gtest/gtest.h>

#include <map>
#include <string>

#include "sdinterp/errors.h"
#include "sdinterp/shard.h"

namespace sdinterp {
namespace {

Shard from(const std::map<std::string, std::string>& vars, const std::string& flag = "", int count = 0) {
  return choose_shard(flag, count, [&vars](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

void expect_error(const std::map<std::string, std::string>& vars, const std::string& words,
                  const std::string& flag = "", int count = 0) {
  try {
    from(vars, flag, count);
    FAIL() << "no error; expected: " << words;
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(Shard, NoneWithoutFlagOrEnvironment) {
  const Shard s = from({});
  EXPECT_EQ(s.count, 1);
  EXPECT_EQ(s.origin, "");
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(s.runs(i));
}

TEST(Shard, FlagSelectsIndexModuloCount) {
  const Shard s = from({}, "1/3");
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.origin, "--shard");
  EXPECT_FALSE(s.runs(0));
  EXPECT_TRUE(s.runs(1));
  EXPECT_TRUE(s.runs(4));
  // The flag wins over the environment.
  EXPECT_EQ(from({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, "0/2").count, 2);
  expect_error({}, "--shard takes I/N", "1");
  expect_error({}, "--shard takes I/N", "a/3");
  expect_error({}, "--shard takes I/N", "-1/3");
  expect_error({}, "shard index 3 is not below the count 3", "3/3");
  expect_error({}, "the shard count must be at least 1", "0/0");
  // --shard-count (a Kubernetes job's count) beside --shard: the same count or an error.
  EXPECT_EQ(from({}, "1/3", 3).count, 3);
  expect_error({}, "--shard 1/3 and --shard-count 4 give different numbers of shards", "1/3", 4);
}

TEST(Shard, SlurmArrays) {
  Shard s = from({{"SLURM_ARRAY_TASK_ID", "2"}, {"SLURM_ARRAY_TASK_COUNT", "3"}});
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.origin, "Slurm array");
  // --array=1-4: ids from 1.
  s = from({{"SLURM_ARRAY_TASK_ID", "4"}, {"SLURM_ARRAY_TASK_MIN", "1"}, {"SLURM_ARRAY_TASK_MAX", "4"}});
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 4);
  // --array=0-10:5: ids 0, 5, 10.
  s = from({{"SLURM_ARRAY_TASK_ID", "5"},
            {"SLURM_ARRAY_TASK_MIN", "0"},
            {"SLURM_ARRAY_TASK_MAX", "10"},
            {"SLURM_ARRAY_TASK_STEP", "5"}});
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 3);
  s = from({{"SLURM_ARRAY_TASK_ID", "7"},
            {"SLURM_ARRAY_TASK_MIN", "5"},
            {"SLURM_ARRAY_TASK_MAX", "9"},
            {"SLURM_ARRAY_TASK_COUNT", "5"}});
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
}

TEST(Shard, HalfGivenOrInconsistentSlurmIsAnError) {
  expect_error({{"SLURM_ARRAY_TASK_ID", "1"}}, "cannot tell how many shards");
  expect_error({{"SLURM_ARRAY_TASK_COUNT", "3"}}, "SLURM_ARRAY_TASK_ID is not set");
  expect_error({{"SLURM_ARRAY_TASK_ID", "x"}, {"SLURM_ARRAY_TASK_COUNT", "3"}}, "SLURM_ARRAY_TASK_ID is \"x\"");
  expect_error({{"SLURM_ARRAY_TASK_ID", "3"}, {"SLURM_ARRAY_TASK_COUNT", "3"}},
               "shard index 3 is not below the count 3");
  expect_error({{"SLURM_ARRAY_TASK_ID", "6"},
                {"SLURM_ARRAY_TASK_MIN", "0"},
                {"SLURM_ARRAY_TASK_MAX", "10"},
                {"SLURM_ARRAY_TASK_STEP", "5"}},
               "not in the array's range");
  expect_error({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "0"}},
               "SLURM_ARRAY_TASK_COUNT (or _MAX) is missing");
  expect_error({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_MIN", "2"}, {"SLURM_ARRAY_TASK_MAX", "1"}},
               "SLURM_ARRAY_TASK_MAX is below SLURM_ARRAY_TASK_MIN");
  expect_error({{"SLURM_ARRAY_TASK_ID", "1"}, {"SLURM_ARRAY_TASK_COUNT", "3"}, {"JOB_COMPLETION_INDEX", "1"}},
               "both a Slurm array");
}

TEST(Shard, KubernetesIndexedJobs) {
  Shard s = from({{"JOB_COMPLETION_INDEX", "2"}}, "", 4);
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 4);
  EXPECT_EQ(s.origin, "Kubernetes indexed job");
  s = from({{"JOB_COMPLETION_INDEX", "0"}, {"SDINTERP_SHARD_COUNT", "3"}});
  EXPECT_EQ(s.count, 3);
  expect_error({{"JOB_COMPLETION_INDEX", "1"}}, "pass --shard-count N or set SDINTERP_SHARD_COUNT");
  expect_error({{"JOB_COMPLETION_INDEX", "1"}, {"SDINTERP_SHARD_COUNT", "zero"}}, "SDINTERP_SHARD_COUNT is \"zero\"");
  expect_error({{"JOB_COMPLETION_INDEX", "5"}}, "shard index 5 is not below the count 2", "", 2);
  expect_error({{"JOB_COMPLETION_INDEX", "one"}}, "JOB_COMPLETION_INDEX is \"one\"", "", 2);
  expect_error({}, "--shard-count is for Kubernetes indexed jobs", "", 2);
}

}  // namespace
}  // namespace sdinterp
