#include "sdinterp/linspace.h"

#include <cstddef>

namespace sdinterp {

std::vector<double> numpy_linspace(double start, double stop, int num) {
  if (num <= 0) return {};
  std::vector<double> out(static_cast<size_t>(num));
  if (num == 1) {
    out[0] = start;
    return out;
  }
  const double step = (stop - start) / (num - 1);
  for (int k = 0; k < num - 1; ++k) out[static_cast<size_t>(k)] = k * step + start;
  out.back() = stop;
  return out;
}

std::vector<double> torch_linspace(double start, double end, int num) {
  if (num <= 0) return {};
  std::vector<double> out(static_cast<size_t>(num));
  if (num == 1) {
    out[0] = start;
    return out;
  }
  const double step = (end - start) / (num - 1);
  const int halfway = num / 2;
  for (int i = 0; i < num; ++i) {
    out[static_cast<size_t>(i)] = i < halfway ? start + step * i : end - step * (num - 1 - i);
  }
  return out;
}

}  // namespace sdinterp
