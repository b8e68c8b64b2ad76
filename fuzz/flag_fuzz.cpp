// libFuzzer: arbitrary text as a flag's value, the way the command line hands it over. The first
// byte picks the flag (a numeric option, --seed or --keyframe); the rest is its text. Either a job
// value or a ConfigError. A number or seed the flag's reader accepts, a job file with that value
// accepts too (apply_job throws no error for it): the command line and job files never disagree.
// A keyframe's compact form is read for its shape only (its ease name, say, is checked as a job's
// keyframe is), so there apply_job may refuse it, with a ConfigError and nothing worse.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdinterp/config.h"
#include "sdinterp/errors.h"
#include "sdinterp/job.h"

namespace {

const std::vector<std::string>& flags() {
  static const std::vector<std::string> out = [] {
    std::vector<std::string> keys;
    for (const sdinterp::NumericOption& o : sdinterp::numeric_options()) keys.emplace_back(o.key);
    keys.emplace_back("seed");
    keys.emplace_back("keyframes");
    return keys;
  }();
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string& key = flags()[data[0] % flags().size()];
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  nlohmann::json job = nlohmann::json::object();
  try {
    if (key == "keyframes") {
      job["mode"] = "timeline";
      job["keyframes"] = nlohmann::json::array({sdinterp::keyframe_flag_value(text)});
    } else {
      job[key] = sdinterp::flag_value(key, text);
    }
  } catch (const sdinterp::ConfigError&) {
    return 0;
  }
  sdinterp::RunConfig config;
  try {
    sdinterp::apply_job(job, config, "fuzz");
  } catch (const sdinterp::ConfigError&) {
    if (key != "keyframes") __builtin_trap();  // the flag took a number that a job file refuses
  }
  (void)config.problems();
  return 0;
}
