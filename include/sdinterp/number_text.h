// Numbers in messages and metadata as people write them: 60, 0.5, 1e-06 (not 60.000000).
#pragma once

#include <cstdio>
#include <string>

namespace sdinterp {

inline std::string number_text(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", value);
  return buf;
}

}  // namespace sdinterp
