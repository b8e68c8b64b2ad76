// The nearest palette entry for many queries against one palette (sinks/quantize.h,
// NearestColor): cell lists built on first use.
#include <algorithm>
#include <limits>

#include "sinks/quantize.h"

namespace sdinterp::sinks {
namespace {
using Vec3 = std::array<float, 3>;
}  // namespace

namespace {
// Lookups per palette entry below which scanning every entry is cheaper than building cells
// (measured on bench/gif_quality.py's sequences: a 64x64 frame's 4,096 pixels against 255
// entries scan in about a tenth of the time their cells take to build).
constexpr size_t kScanAllBelow = 64;
}  // namespace

NearestColor::NearestColor(const std::vector<Rgb>& palette, size_t queries) {
  colors_.reserve(palette.size());
  for (const Rgb& c : palette) {
    colors_.push_back({static_cast<float>(c[0]), static_cast<float>(c[1]), static_cast<float>(c[2])});
  }
  init(queries);
}

NearestColor::NearestColor(const std::vector<std::array<float, 3>>& colors, size_t queries) : colors_(colors) {
  for (auto& c : colors_) {
    for (float& v : c) v = std::clamp(v, 0.f, 255.f);
  }
  init(queries);
}

void NearestColor::init(size_t queries) {
  cache_keys_.assign(static_cast<size_t>(1) << kCacheBits, 0xffffffffu);
  cache_values_.assign(static_cast<size_t>(1) << kCacheBits, 0);
  if (queries / kScanAllBelow < colors_.size()) {
    all_.resize(colors_.size());
    for (size_t j = 0; j < all_.size(); ++j) all_[j] = static_cast<uint16_t>(j);
    return;
  }
  fine_start_.assign(kFine * kFine * kFine, -1);
  coarse_start_.assign(kCoarse * kCoarse * kCoarse, -1);
  scratch_.resize(colors_.size());
  candidates_.reserve(1 << 16);
}

void NearestColor::list_cell(const int lo[3], int side, size_t from, int from_count) {
  // An entry can be nearest somewhere in the box only if its distance to the box is at most
  // the smallest "farthest corner" distance over all entries. The source list is read by
  // position: it lives in candidates_ too, which grows (and may move) below.
  float bound = std::numeric_limits<float>::max();
  for (int j = 0; j < from_count; ++j) {
    const Vec3& c = colors_[from == kAll ? j : candidates_[from + j]];
    float dmin = 0, dmax = 0;
    for (int a = 0; a < 3; ++a) {
      float l = static_cast<float>(lo[a]);
      float h = static_cast<float>(lo[a] + side);  // float queries reach up to the next cell
      float out = std::max({l - c[a], c[a] - h, 0.f});
      dmin += out * out;
      float far = std::max(std::abs(c[a] - l), std::abs(c[a] - h));
      dmax += far * far;
    }
    scratch_[j] = dmin;
    bound = std::min(bound, dmax);
  }
  size_t count_at = candidates_.size();
  candidates_.push_back(0);
  for (int j = 0; j < from_count; ++j) {
    if (scratch_[j] <= bound) {
      candidates_.push_back(from == kAll ? static_cast<uint16_t>(j) : candidates_[from + j]);
    }
  }
  candidates_[count_at] = static_cast<uint16_t>(candidates_.size() - count_at - 1);
}

size_t NearestColor::coarse_list(int cr, int cg, int cb) {
  int coarse = (cr * kCoarse + cg) * kCoarse + cb;
  if (coarse_start_[coarse] < 0) {
    int corner[3] = {cr << kCoarseBits, cg << kCoarseBits, cb << kCoarseBits};
    coarse_start_[coarse] = static_cast<int32_t>(candidates_.size());
    list_cell(corner, 1 << kCoarseBits, kAll, static_cast<int>(colors_.size()));
  }
  return static_cast<size_t>(coarse_start_[coarse]);
}

void NearestColor::build_fine(int cell, int r, int g, int b) {
  constexpr int kShift = kCoarseBits - kFineBits;
  size_t from = coarse_list(r >> kShift, g >> kShift, b >> kShift);
  int lo[3] = {r << kFineBits, g << kFineBits, b << kFineBits};
  fine_start_[cell] = static_cast<int32_t>(candidates_.size());
  list_cell(lo, 1 << kFineBits, from + 1, candidates_[from]);
}

int NearestColor::find_once(float r, float g, float b) {
  r = std::clamp(r, 0.f, 255.f);
  g = std::clamp(g, 0.f, 255.f);
  b = std::clamp(b, 0.f, 255.f);
  if (!all_.empty()) return nearest_of(all_.data(), static_cast<int>(all_.size()), r, g, b);
  int cr = static_cast<int>(r) >> kCoarseBits;
  int cg = static_cast<int>(g) >> kCoarseBits;
  int cb = static_cast<int>(b) >> kCoarseBits;
  size_t from = coarse_list(cr, cg, cb);
  return nearest_of(&candidates_[from + 1], candidates_[from], r, g, b);
}

}  // namespace sdinterp::sinks
