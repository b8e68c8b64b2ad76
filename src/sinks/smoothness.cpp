#include "sdinterp/smoothness.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace sdinterp {

double frame_distance(const Frame& a, const Frame& b) {
  if (a.rgb.size() != b.rgb.size() || a.rgb.empty())
    throw std::invalid_argument("frame_distance: frames of different sizes");
  uint64_t sum = 0;  // squared 8-bit differences: exact in 64 bits for any frame up to 2^46 values
  for (size_t i = 0; i < a.rgb.size(); ++i) {
    const int d = static_cast<int>(a.rgb[i]) - static_cast<int>(b.rgb[i]);
    sum += static_cast<uint64_t>(d * d);
  }
  return std::sqrt(static_cast<double>(sum) / static_cast<double>(a.rgb.size()));
}

SmoothnessReport smoothness_of(std::vector<double> distances) {
  SmoothnessReport r;
  r.distances = std::move(distances);
  const auto& d = r.distances;
  const double n = static_cast<double>(d.size());
  if (d.empty()) return r;
  double sum = 0;
  for (double x : d) sum += x;
  r.mean = sum / n;
  r.max = *std::max_element(d.begin(), d.end());
  double squares = 0;
  for (double x : d) squares += (x - r.mean) * (x - r.mean);
  r.istd = std::sqrt(squares / n);
  if (r.mean > 0) {
    r.cv = r.istd / r.mean;
    r.max_over_mean = r.max / r.mean;
    // sum_i sum_k |d_i - d_k| from the sorted values: 2 * sum_i (2i - n + 1) x_(i).
    std::vector<double> sorted = d;
    std::sort(sorted.begin(), sorted.end());
    double pairs = 0;
    for (size_t i = 0; i < sorted.size(); ++i) pairs += (2.0 * static_cast<double>(i) - n + 1) * sorted[i];
    pairs *= 2;
    r.smoothness = 1 - pairs / (2 * n * n * r.mean);
  }
  return r;
}

nlohmann::json SmoothnessReport::to_json(bool cycle) const {
  auto maybe = [](const std::optional<double>& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
  return {{"distances", distances},
          {"mean", mean},
          {"max", max},
          {"istd", istd},
          {"cv", maybe(cv)},
          {"max_over_mean", maybe(max_over_mean)},
          {"smoothness", maybe(smoothness)},
          {"cycle", cycle}};
}

void SmoothnessMeter::add(const Frame& frame) {
  if (count_ == 0)
    first_ = frame;
  else
    distances_.push_back(frame_distance(previous_, frame));
  previous_ = frame;
  ++count_;
}

nlohmann::json SmoothnessMeter::report() const {
  if (count_ < 2) return nullptr;
  std::vector<double> d = distances_;
  if (cycle_) d.push_back(frame_distance(previous_, first_));
  return smoothness_of(std::move(d)).to_json(cycle_);
}

}  // namespace sdinterp
