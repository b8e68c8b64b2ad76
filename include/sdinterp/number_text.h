// Numbers in messages and metadata as people write them: 60, 0.5, 1e-06 (not 60.000000); counts
// with their noun: "1 frame", "30 frames", "1 step", "2 times".
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace sdinterp {

inline std::string number_text(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", value);
  return buf;
}

// `count` and `noun`, the noun with an "s" unless the count is 1.
inline std::string count_text(int64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

}  // namespace sdinterp
