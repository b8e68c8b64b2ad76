#include "sdinterp/pacing.h"

#include <stdexcept>

namespace sdinterp {

std::vector<double> even_weights(const std::vector<double>& t, const std::vector<double>& distances) {
  if (t.size() < 2 || distances.size() + 1 != t.size()) throw std::invalid_argument("even_weights: sizes");
  for (size_t j = 1; j < t.size(); ++j) {
    if (!(t[j] > t[j - 1])) return t;
  }
  std::vector<double> cumulative = {0.0};
  for (double d : distances) cumulative.push_back(cumulative.back() + d);
  const double total = cumulative.back();
  if (!(total > 0)) return t;
  std::vector<double> out = t;
  const size_t steps = t.size() - 1;
  size_t m = 0;
  for (size_t k = 1; k < steps; ++k) {
    const double target = total * static_cast<double>(k) / static_cast<double>(steps);
    while (m + 1 < steps && cumulative[m + 1] < target) ++m;
    const double span = cumulative[m + 1] - cumulative[m];
    const double f = span > 0 ? (target - cumulative[m]) / span : 0.0;
    out[k] = t[m] + f * (t[m + 1] - t[m]);
  }
  return out;
}

}  // namespace sdinterp
