// libFuzzer: arbitrary bytes as a job file / batch line. Either a RunConfig or a ConfigError.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sdinterp/errors.h"
#include "sdinterp/job.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    sdinterp::RunConfig c = sdinterp::parse_job(text, "job.json");
    // What parses must validate without crashing and write back as a job that parses equal.
    (void)c.problems();
    const nlohmann::json once = sdinterp::job_to_json(c);
    std::string text_once;
    try {
      text_once = once.dump();
    } catch (const nlohmann::json::type_error&) {
      return 0;  // strings with invalid UTF-8 cannot be written back as JSON; nothing to compare
    }
    if (sdinterp::job_to_json(sdinterp::parse_job(text_once, "again")) != once) __builtin_trap();
  } catch (const sdinterp::ConfigError&) {
  }
  return 0;
}
