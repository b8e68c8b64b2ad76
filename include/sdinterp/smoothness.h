// How evenly a walk moves: the smoothness report of a frame sequence, computed on its 8-bit
// frames. No torch. The definitions (README, "Smoothness report"), exactly:
//   d_j = sqrt(mean((F_{j+1} - F_j)^2)) over every pixel and channel, in 0..255 units, for each
//   pair of consecutive frames (for a cycle also last to first);
//   mean, max; istd = the population standard deviation of d; cv = istd / mean;
//   max_over_mean = max / mean; smoothness = 1 - Gini(d), with
//   Gini(d) = sum_i sum_k |d_i - d_k| / (2 n^2 mean(d)).
// Ratios over a mean of 0 (frames all equal) are null.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "sdinterp/frame_sink.h"

namespace sdinterp {

// d between two frames of the same size.
double frame_distance(const Frame& a, const Frame& b);

struct SmoothnessReport {
  std::vector<double> distances;
  double mean = 0, max = 0, istd = 0;
  std::optional<double> cv, max_over_mean, smoothness;
  // {"distances": [...], "mean", "max", "istd", "cv", "max_over_mean", "smoothness", "cycle"}
  nlohmann::json to_json(bool cycle) const;
};

// The statistics of `distances` (at least one).
SmoothnessReport smoothness_of(std::vector<double> distances);

// Collects the distances of frames as they come, keeping only the first and the previous frame.
class SmoothnessMeter {
 public:
  explicit SmoothnessMeter(bool cycle) : cycle_(cycle) {}
  void add(const Frame& frame);
  // The report of the frames added (null before 2 frames).
  nlohmann::json report() const;

 private:
  bool cycle_;
  Frame first_, previous_;
  std::vector<double> distances_;
  int64_t count_ = 0;
};

}  // namespace sdinterp
