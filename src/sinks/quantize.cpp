#include "sinks/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <thread>

#include "sinks/lzw.h"

namespace sdinterp::sinks {
namespace {

using Vec3 = std::array<float, 3>;

using Point = ColorPoint;

float dist2(const Vec3& a, const Vec3& b) {
  float dr = a[0] - b[0];
  float dg = a[1] - b[1];
  float db = a[2] - b[2];
  return dr * dr + dg * dg + db * db;
}

// Pixels looked at for the palette: all of them up to 2^20, evenly spaced beyond.
size_t sample_step(const Frame& frame) {
  size_t pixels = static_cast<size_t>(frame.width) * frame.height;
  return std::max<size_t>(1, pixels / (1u << 20));
}

// Colours of the frame at `bits` a channel, each bin carrying the exact mean of its pixels
// and their count: k-means over ~10^4 weighted points instead of 10^5..10^6 pixels.
std::vector<Point> binned_histogram(const Frame& frame, int bits) {
  struct Bin {
    uint32_t n;
    uint32_t r, g, b;
  };
  std::vector<Bin> bins(static_cast<size_t>(1) << (3 * bits), Bin{0, 0, 0, 0});
  size_t pixels = static_cast<size_t>(frame.width) * frame.height;
  size_t step = sample_step(frame);  // at most 2^20 samples: the 32-bit sums cannot overflow
  int drop = 8 - bits;
  const uint8_t* p = frame.rgb.data();
  for (size_t i = 0; i < pixels; i += step) {
    const uint8_t* q = p + 3 * i;
    size_t key = (static_cast<size_t>(q[0] >> drop) << (2 * bits)) | (static_cast<size_t>(q[1] >> drop) << bits) |
                 static_cast<size_t>(q[2] >> drop);
    Bin& bin = bins[key];
    ++bin.n;
    bin.r += q[0];
    bin.g += q[1];
    bin.b += q[2];
  }
  std::vector<Point> points;
  for (const Bin& bin : bins) {
    if (bin.n == 0) continue;
    float n = static_cast<float>(bin.n);
    points.push_back(Point{{bin.r / n, bin.g / n, bin.b / n}, n});
  }
  return points;
}

// Every distinct colour with its count, in colour order: for frames whose colours fall into
// few bins, such as smooth gradients, where binning would merge the shades that matter.
// Colours are counted in an open-addressed table that grows as needed; a pixel equal to the
// one before (runs are long in smooth frames) skips the lookup.
std::vector<Point> exact_histogram(const Frame& frame) {
  constexpr uint32_t kEmpty = 0xffffffffu;
  size_t pixels = static_cast<size_t>(frame.width) * frame.height;
  size_t step = sample_step(frame);
  int bits = 12;
  std::vector<uint32_t> keys(size_t{1} << bits, kEmpty);
  std::vector<uint32_t> counts(keys.size(), 0);
  size_t used = 0;
  auto slot_of = [&keys, &bits](uint32_t key) {
    uint32_t mask = static_cast<uint32_t>(keys.size() - 1);
    uint32_t h = (key * 2654435761u) >> (32 - bits);
    while (keys[h] != kEmpty && keys[h] != key) h = (h + 1) & mask;
    return h;
  };
  const uint8_t* p = frame.rgb.data();
  uint32_t last_key = kEmpty;
  uint32_t last_slot = 0;
  for (size_t i = 0; i < pixels; i += step) {
    const uint8_t* q = p + 3 * i;
    uint32_t key = static_cast<uint32_t>(q[0]) << 16 | static_cast<uint32_t>(q[1]) << 8 | q[2];
    if (key == last_key) {
      ++counts[last_slot];
      continue;
    }
    uint32_t h = slot_of(key);
    if (keys[h] == kEmpty) {
      if (2 * (used + 1) > keys.size()) {
        // Half full: double the table and place the colours again.
        std::vector<uint32_t> old_keys(size_t{1} << (bits + 1), kEmpty);
        std::vector<uint32_t> old_counts(old_keys.size(), 0);
        old_keys.swap(keys);
        old_counts.swap(counts);
        ++bits;
        for (size_t j = 0; j < old_keys.size(); ++j) {
          if (old_keys[j] == kEmpty) continue;
          uint32_t k = slot_of(old_keys[j]);
          keys[k] = old_keys[j];
          counts[k] = old_counts[j];
        }
        h = slot_of(key);
      }
      keys[h] = key;
      ++used;
    }
    ++counts[h];
    last_key = key;
    last_slot = h;
  }
  std::vector<std::pair<uint32_t, uint32_t>> colors;
  colors.reserve(used);
  for (size_t j = 0; j < keys.size(); ++j) {
    if (keys[j] != kEmpty) colors.emplace_back(keys[j], counts[j]);
  }
  std::sort(colors.begin(), colors.end());
  std::vector<Point> points;
  points.reserve(colors.size());
  for (const auto& [k, n] : colors) {
    points.push_back(
        Point{{static_cast<float>(k >> 16), static_cast<float>((k >> 8) & 0xff), static_cast<float>(k & 0xff)},
              static_cast<float>(n)});
  }
  return points;
}

// The frame's colours for k-means: 5-bit bins, unless they are too few to place the palette
// finely (smooth or narrow-gamut frames); then the exact colours, or 6-bit bins where there
// are too many of those to cluster quickly.
std::vector<Point> histogram(const Frame& frame, int max_colors) {
  std::vector<Point> points = binned_histogram(frame, 5);
  if (static_cast<int>(points.size()) >= 8 * max_colors) return points;
  points = exact_histogram(frame);
  if (static_cast<int>(points.size()) <= 64 * max_colors) return points;
  return binned_histogram(frame, 6);
}

// Initial centroids for the first frame: repeatedly split the box of points with the largest
// squared error, along its widest axis, where the split leaves the least error (a variance
// based median cut, close to Wu's method). k-means then refines.
std::vector<Vec3> split_boxes(std::vector<Point> points, int count) {
  struct Box {
    size_t begin, end;
    double sse;
    int axis;
    Vec3 mean;
  };
  auto describe = [&points](size_t begin, size_t end) {
    Box box{begin, end, 0.0, 0, {0, 0, 0}};
    double w = 0;
    double s[3] = {0, 0, 0};
    double s2[3] = {0, 0, 0};
    for (size_t i = begin; i < end; ++i) {
      const Point& p = points[i];
      w += p.w;
      for (int a = 0; a < 3; ++a) {
        s[a] += p.w * p.c[a];
        s2[a] += p.w * p.c[a] * p.c[a];
      }
    }
    double best = -1;
    for (int a = 0; a < 3; ++a) {
      double var = s2[a] - s[a] * s[a] / w;
      box.sse += var;
      box.mean[a] = static_cast<float>(s[a] / w);
      if (var > best) {
        best = var;
        box.axis = a;
      }
    }
    if (end - begin < 2) box.sse = 0;
    return box;
  };

  std::vector<Box> boxes{describe(0, points.size())};
  while (static_cast<int>(boxes.size()) < count) {
    auto worst = std::max_element(boxes.begin(), boxes.end(), [](const Box& a, const Box& b) { return a.sse < b.sse; });
    if (worst->sse <= 0) break;
    Box box = *worst;
    int axis = box.axis;
    std::sort(points.begin() + box.begin, points.begin() + box.end,
              [axis](const Point& a, const Point& b) { return a.c[axis] < b.c[axis]; });
    // Sweep for the split with the least summed error along the axis.
    double total_w = 0, total_s = 0, total_s2 = 0;
    for (size_t i = box.begin; i < box.end; ++i) {
      double x = points[i].c[axis];
      total_w += points[i].w;
      total_s += points[i].w * x;
      total_s2 += points[i].w * x * x;
    }
    double w = 0, s = 0, s2 = 0;
    double best_err = std::numeric_limits<double>::max();
    size_t best_at = box.begin + 1;
    for (size_t i = box.begin; i + 1 < box.end; ++i) {
      double x = points[i].c[axis];
      w += points[i].w;
      s += points[i].w * x;
      s2 += points[i].w * x * x;
      double rw = total_w - w, rs = total_s - s, rs2 = total_s2 - s2;
      double err = (s2 - s * s / w) + (rs2 - rs * rs / rw);
      if (err < best_err) {
        best_err = err;
        best_at = i + 1;
      }
    }
    *worst = describe(box.begin, best_at);
    boxes.push_back(describe(best_at, box.end));
  }
  std::vector<Vec3> centroids;
  for (const Box& box : boxes) centroids.push_back(box.mean);
  return centroids;
}

// Lloyd iterations over weighted points. A centroid left without points is moved onto the
// point that is currently worst served, so no palette entry is wasted.
void kmeans(const std::vector<Point>& points, std::vector<Vec3>& centroids, int iterations) {
  std::vector<int> assignment(points.size());
  for (int it = 0; it < iterations; ++it) {
    NearestColor nearest(centroids);
    std::vector<double> sums(centroids.size() * 4, 0.0);
    for (size_t i = 0; i < points.size(); ++i) {
      const Point& p = points[i];
      int k = nearest.find_once(p.c[0], p.c[1], p.c[2]);
      assignment[i] = k;
      double* s = &sums[4 * k];
      s[0] += p.w * p.c[0];
      s[1] += p.w * p.c[1];
      s[2] += p.w * p.c[2];
      s[3] += p.w;
    }
    std::vector<size_t> empty;
    float moved = 0;
    for (size_t k = 0; k < centroids.size(); ++k) {
      const double* s = &sums[4 * k];
      if (s[3] > 0) {
        Vec3 c = {static_cast<float>(s[0] / s[3]), static_cast<float>(s[1] / s[3]), static_cast<float>(s[2] / s[3])};
        moved = std::max(moved, dist2(c, centroids[k]));
        centroids[k] = c;
      } else {
        empty.push_back(k);
      }
    }
    // Converged (no entry moved by a level): further rounds would only jitter.
    if (empty.empty() && moved < 1.0f) break;
    if (!empty.empty()) {
      std::vector<std::pair<float, size_t>> errors(points.size());
      for (size_t i = 0; i < points.size(); ++i) {
        errors[i] = {points[i].w * dist2(points[i].c, centroids[assignment[i]]), i};
      }
      size_t take = std::min(empty.size(), errors.size());
      std::partial_sort(errors.begin(), errors.begin() + take, errors.end(),
                        [](const auto& a, const auto& b) { return a.first > b.first; });
      for (size_t j = 0; j < take; ++j) centroids[empty[j]] = points[errors[j].second].c;
    }
  }
}

// The frame's distinct colours if there are at most `limit`.
bool exact_colors(const Frame& frame, int limit, std::vector<Rgb>& colors) {
  // Open addressing on 24-bit colours; 1024 slots hold up to 256 colours sparsely.
  constexpr uint32_t kSlots = 1024;
  constexpr uint32_t kEmpty = 0xffffffffu;
  std::vector<uint32_t> slots(kSlots, kEmpty);
  colors.clear();
  size_t pixels = static_cast<size_t>(frame.width) * frame.height;
  const uint8_t* p = frame.rgb.data();
  for (size_t i = 0; i < pixels; ++i, p += 3) {
    uint32_t key = static_cast<uint32_t>(p[0]) << 16 | static_cast<uint32_t>(p[1]) << 8 | p[2];
    uint32_t h = (key * 2654435761u) >> 22;
    while (slots[h] != kEmpty && slots[h] != key) h = (h + 1) & (kSlots - 1);
    if (slots[h] == key) continue;
    if (static_cast<int>(colors.size()) == limit) return false;
    slots[h] = key;
    colors.push_back({p[0], p[1], p[2]});
  }
  return true;
}

}  // namespace

PaletteBuilder::PaletteBuilder(int max_colors) : max_colors_(max_colors) {}

Palette PaletteBuilder::build(const Frame& frame) {
  std::vector<Point> points = histogram(frame, max_colors_);
  if (!palette_.colors.empty() && points.size() == points_.size() &&
      std::equal(points.begin(), points.end(), points_.begin(),
                 [](const Point& a, const Point& b) { return a.w == b.w && a.c == b.c; })) {
    // The same colours as the previous frame (a held frame): the same palette, so nothing
    // on screen changes.
    return palette_;
  }
  std::vector<Vec3> centroids;
  std::vector<Rgb> exact;
  if (static_cast<int>(points.size()) <= max_colors_ && exact_colors(frame, max_colors_, exact)) {
    // Few colours: each gets its own entry, losslessly.
    palette_.colors = exact;
    palette_.rms_error = 0;
    for (const Rgb& c : exact) {
      centroids.push_back({static_cast<float>(c[0]), static_cast<float>(c[1]), static_cast<float>(c[2])});
    }
  } else {
    if (static_cast<int>(centroids_.size()) == max_colors_) {
      centroids = centroids_;
      kmeans(points, centroids, 6);
    } else {
      centroids = split_boxes(points, max_colors_);
      kmeans(points, centroids, 12);
    }
    palette_.colors.clear();
    for (const Vec3& c : centroids) {
      palette_.colors.push_back({static_cast<uint8_t>(std::lround(std::clamp(c[0], 0.f, 255.f))),
                                 static_cast<uint8_t>(std::lround(std::clamp(c[1], 0.f, 255.f))),
                                 static_cast<uint8_t>(std::lround(std::clamp(c[2], 0.f, 255.f)))});
    }
    NearestColor nearest(palette_.colors);
    double sse = 0, weight = 0;
    for (const Point& p : points) {
      int k = nearest.find_once(p.c[0], p.c[1], p.c[2]);
      sse += p.w * dist2(p.c, nearest.color(k));
      weight += p.w;
    }
    palette_.rms_error = static_cast<float>(std::sqrt(sse / weight));
  }
  centroids_ = std::move(centroids);
  points_ = std::move(points);
  return palette_;
}

NearestColor::NearestColor(const std::vector<Rgb>& palette) {
  colors_.reserve(palette.size());
  for (const Rgb& c : palette) {
    colors_.push_back({static_cast<float>(c[0]), static_cast<float>(c[1]), static_cast<float>(c[2])});
  }
  init();
}

NearestColor::NearestColor(const std::vector<std::array<float, 3>>& colors) : colors_(colors) {
  for (auto& c : colors_) {
    for (float& v : c) v = std::clamp(v, 0.f, 255.f);
  }
  init();
}

void NearestColor::init() {
  fine_start_.assign(kFine * kFine * kFine, -1);
  coarse_start_.assign(kCoarse * kCoarse * kCoarse, -1);
  scratch_.resize(colors_.size());
  candidates_.reserve(1 << 16);
  cache_keys_.assign(static_cast<size_t>(1) << kCacheBits, 0xffffffffu);
  cache_values_.assign(static_cast<size_t>(1) << kCacheBits, 0);
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
  int cr = static_cast<int>(r) >> kCoarseBits;
  int cg = static_cast<int>(g) >> kCoarseBits;
  int cb = static_cast<int>(b) >> kCoarseBits;
  size_t from = coarse_list(cr, cg, cb);
  return nearest_of(&candidates_[from + 1], candidates_[from], r, g, b);
}

int NearestColor::find_cached(int r, int g, int b) {
  uint32_t key = static_cast<uint32_t>(r) << 16 | static_cast<uint32_t>(g) << 8 | static_cast<uint32_t>(b);
  uint32_t slot = (key * 2654435761u) >> (32 - kCacheBits);
  if (cache_keys_[slot] != key) {
    cache_keys_[slot] = key;
    cache_values_[slot] =
        static_cast<uint16_t>(find(static_cast<float>(r), static_cast<float>(g), static_cast<float>(b)));
  }
  return cache_values_[slot];
}

const uint16_t* NearestColor::near(float& r, float& g, float& b, int& count) {
  r = std::clamp(r, 0.f, 255.f);
  g = std::clamp(g, 0.f, 255.f);
  b = std::clamp(b, 0.f, 255.f);
  int ri = static_cast<int>(r) >> kFineBits;
  int gi = static_cast<int>(g) >> kFineBits;
  int bi = static_cast<int>(b) >> kFineBits;
  int cell = (ri * kFine + gi) * kFine + bi;
  if (fine_start_[cell] < 0) build_fine(cell, ri, gi, bi);
  const uint16_t* list = &candidates_[fine_start_[cell]];
  count = list[0];
  return list + 1;
}

int NearestColor::nearest_of(const uint16_t* list, int count, float r, float g, float b) const {
  int best = list[0];
  float best_d = std::numeric_limits<float>::max();
  for (int j = 0; j < count; ++j) {
    const Vec3& c = colors_[list[j]];
    float dr = r - c[0], dg = g - c[1], db = b - c[2];
    float d = dr * dr + dg * dg + db * db;
    if (d < best_d) {
      best_d = d;
      best = list[j];
    }
  }
  return best;
}

namespace {

// Mapping constants, chosen on bench/gif_quality.py's sequences (README, "The GIF encoder").
constexpr float kDamping = 0.875f;  // share of the error diffused
constexpr float kDeadZone = 1.f;    // error (levels) not diffused
constexpr float kMaxError = 48.f;   // clamp of a diffused error (levels)
constexpr float kLossyDiffusion = 100.f;
constexpr float kLossyOrdered = 100.f;
constexpr float kOrderedMaxAmplitude = 16.f;

// 8x8 Bayer matrix, values 0..63.
constexpr uint8_t kBayer[8][8] = {{0, 32, 8, 40, 2, 34, 10, 42},  {48, 16, 56, 24, 50, 18, 58, 26},
                                  {12, 44, 4, 36, 14, 46, 6, 38}, {60, 28, 52, 20, 62, 30, 54, 22},
                                  {3, 35, 11, 43, 1, 33, 9, 41},  {51, 19, 59, 27, 49, 17, 57, 25},
                                  {15, 47, 7, 39, 13, 45, 5, 37}, {63, 31, 55, 23, 61, 29, 53, 21}};
}  // namespace

namespace {

// What every band of one frame shares.
struct MapContext {
  const uint8_t* src;
  uint8_t* shown;
  int width;
  Dither dither;
  const std::vector<Rgb>* palette;
  int transparent;  // index meaning "keep what is shown"
  bool can_keep;
  float lossy;
  float ordered_amp;
  uint8_t* indices;
};

// One band's result: its LZW stream and the box of pixels it changed.
struct Band {
  int y0 = 0, y1 = 0;
  int min_x = 0, min_y = 0, max_x = -1, max_y = -1;
};

float dist(const float* t, const uint8_t* c) {
  float d0 = t[0] - c[0], d1 = t[1] - c[1], d2 = t[2] - c[2];
  return d0 * d0 + d1 * d1 + d2 * d2;
}
float dist(const float* t, const Vec3& c) {
  float d0 = t[0] - c[0], d1 = t[1] - c[1], d2 = t[2] - c[2];
  return d0 * d0 + d1 * d1 + d2 * d2;
}

// Maps rows y0..y1-1 in raster order, choosing each pixel's index with the LZW state in view.
void map_rows(const MapContext& m, Band& band, LzwEncoder& lzw) {
  NearestColor nearest(*m.palette);
  const std::vector<Rgb>& palette = *m.palette;
  bool diffuse = m.dither == Dither::kDiffusion;
  size_t row_floats = static_cast<size_t>(m.width + 2) * 3;
  std::vector<float> errors(diffuse ? 2 * row_floats : 0, 0.f);
  float* err_cur = errors.data();
  float* err_next = diffuse ? errors.data() + row_floats : nullptr;
  // The changed box is kept in locals and stored once: bands sit side by side in memory, and
  // per-pixel stores to them would bounce one cache line between the cores.
  int min_x = m.width, min_y = band.y1, max_x = -1, max_y = -1;
  for (int y = band.y0; y < band.y1; ++y) {
    int previous = -1;
    // The error pushed right by the previous pixel, kept in registers: it is the one input
    // each pixel waits for, and a round trip through memory would lengthen that wait.
    float carry[3] = {0.f, 0.f, 0.f};
    for (int x = 0; x < m.width; ++x) {
      size_t i = static_cast<size_t>(y) * m.width + x;
      const uint8_t* s = m.src + 3 * i;
      uint8_t* shown = m.shown + 3 * i;
      float t[3] = {static_cast<float>(s[0]), static_cast<float>(s[1]), static_cast<float>(s[2])};
      if (diffuse) {
        const float* e = &err_cur[3 * (x + 1)];
        for (int a = 0; a < 3; ++a) t[a] += e[a] + carry[a];
      } else if (m.dither == Dither::kOrdered) {
        float d = (static_cast<float>(kBayer[y & 7][x & 7]) + 0.5f) / 64.f - 0.5f;
        for (int a = 0; a < 3; ++a) t[a] += m.ordered_amp * d;
      }
      for (float& v : t) v = std::clamp(v, 0.f, 255.f);
      int k;
      int ti[3] = {static_cast<int>(t[0]), static_cast<int>(t[1]), static_cast<int>(t[2])};
      const bool integral =
          static_cast<float>(ti[0]) == t[0] && static_cast<float>(ti[1]) == t[1] && static_cast<float>(ti[2]) == t[2];
      if (integral) {
        // Undithered (or fully diffused) pixels repeat colours: those lookups are cached.
        k = nearest.find_cached(ti[0], ti[1], ti[2]);
      } else {
        int count = 0;
        const uint16_t* list = nearest.near(t[0], t[1], t[2], count);
        k = nearest.nearest_of(list, count, t[0], t[1], t[2]);
      }
      float e_k = dist(t, nearest.color(k));
      int choice = k;
      float e_keep = m.can_keep ? dist(t, shown) : 0.f;
      // What is on screen is kept (transparent) when it is closer than the best new colour,
      // or as close and the pixel before was kept too: runs of "keep" compress to almost
      // nothing, single kept pixels among changed ones only break the LZW strings.
      if (m.can_keep && (e_keep < e_k || (e_keep == e_k && previous == m.transparent))) {
        choice = m.transparent;
      }
      if (!lzw.extends(choice)) {
        // A nearly-as-good colour that continues the current LZW string costs no new code.
        // Without dithering only exact ties are traded (an equally distant colour, or the
        // shown one): the error stays the same.
        float limit = e_k + m.lossy;
        float best = std::numeric_limits<float>::max();
        lzw.for_each_extension([&](int symbol) {
          float e = symbol == m.transparent ? e_keep : dist(t, nearest.color(symbol));
          if (e <= limit && e < best) {
            best = e;
            choice = symbol;
          }
        });
      }
      lzw.put(choice);
      previous = choice;
      m.indices[i] = static_cast<uint8_t>(choice);
      if (choice != m.transparent) {
        const Rgb& c = palette[choice];
        shown[0] = c[0];
        shown[1] = c[1];
        shown[2] = c[2];
        min_x = std::min(min_x, x);
        max_x = std::max(max_x, x);
        min_y = std::min(min_y, y);
        max_y = std::max(max_y, y);
      }
      if (diffuse) {
        // Floyd-Steinberg weights. Errors under a level are dropped (where the palette fits,
        // as in a smooth gradient, there is nothing to dither: flat stays flat and compresses),
        // the rest is damped and clamped so it cannot run away into streaks where the
        // palette has no colour near the target.
        if (integral && std::abs(ti[0] - shown[0]) <= 1 && std::abs(ti[1] - shown[1]) <= 1 &&
            std::abs(ti[2] - shown[2]) <= 1) {
          // The common case where the palette fits: whole-level errors of at most one level
          // are all inside the dead zone, so nothing moves on (the general code below gives
          // exactly zero for them too).
          static_assert(kDeadZone >= 1.f, "the shortcut assumes one-level errors are dropped");
          carry[0] = carry[1] = carry[2] = 0.f;
          continue;
        }
        float e[3];
        for (int a = 0; a < 3; ++a) {
          float d = t[a] - shown[a];
          d = d > 0 ? std::max(0.f, d - kDeadZone) : std::min(0.f, d + kDeadZone);
          e[a] = std::clamp(d * kDamping, -kMaxError, kMaxError);
          carry[a] = e[a] * (7.f / 16.f);
        }
        // Most errors fall in the dead zone where the palette fits; adding zeros is skipped.
        if (e[0] != 0.f || e[1] != 0.f || e[2] != 0.f) {
          for (int a = 0; a < 3; ++a) {
            err_next[3 * x + a] += e[a] * (3.f / 16.f);
            err_next[3 * (x + 1) + a] += e[a] * (5.f / 16.f);
            err_next[3 * (x + 2) + a] += e[a] * (1.f / 16.f);
          }
        }
      }
    }
    if (diffuse) {
      std::swap(err_cur, err_next);
      std::fill(err_next, err_next + row_floats, 0.f);
    }
  }
  band.min_x = min_x;
  band.min_y = min_y;
  band.max_x = max_x;
  band.max_y = max_y;
}

// Bands mapped in parallel: one per core, each at least 64 rows (fewer, larger bands keep
// the LZW dictionary warm and the diffusion seams few).
int band_count(int height) {
  int cores = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(std::min(cores, height / 64), 1, 4);
}

}  // namespace

FrameMapper::FrameMapper(int width, int height, Dither dither)
    : width_(width),
      height_(height),
      dither_(dither),
      bands_(band_count(height)),
      shown_(static_cast<size_t>(width) * height * 3, 0) {}

struct FrameMapper::Work {
  Frame frame;
  Palette palette;
  bool held = false;  // the same pixels as the frame before
  MapContext context;
  int code_size = 2;
  std::vector<uint8_t> indices;
  std::vector<Band> bands;
  std::vector<LzwEncoder> streams;
};

FrameMapper::~FrameMapper() = default;

std::shared_ptr<FrameMapper::Work> FrameMapper::start(Frame frame, Palette palette) {
  auto work = std::make_shared<Work>();
  work->frame = std::move(frame);
  work->palette = std::move(palette);
  bool can_keep = frame_index_ > 0;
  ++frame_index_;
  if (can_keep && work->frame.rgb == previous_) {
    work->held = true;
    return work;
  }
  previous_ = work->frame.rgb;

  const Palette& table = work->palette;
  MapContext& m = work->context;
  m.src = work->frame.rgb.data();
  m.shown = shown_.data();
  m.width = width_;
  m.dither = dither_;
  m.palette = &table.colors;
  m.transparent = static_cast<int>(table.colors.size());
  m.can_keep = can_keep;
  // How far (squared RGB distance) a colour may be from the best one and still be taken
  // because it continues the current LZW string. Error diffusion corrects the extra error in
  // the next pixels, so it can afford more; without dithering only exact ties are traded.
  m.lossy = dither_ == Dither::kDiffusion ? kLossyDiffusion : dither_ == Dither::kOrdered ? kLossyOrdered : 0.f;
  // A frame the palette fits almost exactly (a smooth gradient) shows every extra error; a
  // photo, whose colours sit several levels from the nearest entry anyway, hides it.
  m.lossy *= std::clamp((table.rms_error - 1.f) / 2.f, 0.f, 1.f);
  // The threshold pattern spans about the palette's spacing here: wide enough to mix the
  // neighbouring entries, no wider (a palette that fits exactly needs no dither at all).
  m.ordered_amp = std::min(kOrderedMaxAmplitude, 2.5f * table.rms_error);
  work->indices.resize(static_cast<size_t>(width_) * height_);
  m.indices = work->indices.data();

  int entries = m.transparent + (can_keep ? 1 : 0);
  while ((1 << work->code_size) < entries) ++work->code_size;

  work->bands.resize(bands_);
  for (int b = 0; b < bands_; ++b) {
    work->bands[b].y0 = static_cast<int>(static_cast<int64_t>(height_) * b / bands_);
    work->bands[b].y1 = static_cast<int>(static_cast<int64_t>(height_) * (b + 1) / bands_);
    work->streams.emplace_back(work->code_size, b > 0);
  }
  return work;
}

void FrameMapper::map_band(Work& work, int band) {
  if (work.held) return;
  map_rows(work.context, work.bands[band], work.streams[band]);
}

MappedFrame FrameMapper::finish(Work& work) {
  MappedFrame out;
  if (work.held) {
    // A held frame: nothing changes on screen, so it is one transparent pixel (which keeps
    // the frame and its delay). Dithering it again would only stir the noise.
    out.palette.assign(4, Rgb{0, 0, 0});
    out.code_size = 2;
    out.transparent = 0;
    out.width = out.height = 1;
    LzwEncoder lzw(2);
    lzw.put(0);
    out.lzw = lzw.finish();
    return out;
  }
  int n = static_cast<int>(work.bands.size());
  int min_x = width_, min_y = height_, max_x = -1, max_y = -1;
  for (const Band& band : work.bands) {
    min_x = std::min(min_x, band.min_x);
    min_y = std::min(min_y, band.min_y);
    max_x = std::max(max_x, band.max_x);
    max_y = std::max(max_y, band.max_y);
  }
  if (max_x < 0) {
    // Nothing changed: one transparent pixel keeps the frame (and its delay).
    min_x = max_x = min_y = max_y = 0;
  }
  out.left = min_x;
  out.top = min_y;
  out.width = max_x - min_x + 1;
  out.height = max_y - min_y + 1;
  if (static_cast<int64_t>(out.width) * out.height * 4 >= static_cast<int64_t>(width_) * height_ * 3) {
    // Cropping would save little: keep the whole frame and the streams built while mapping.
    out.left = out.top = 0;
    out.width = width_;
    out.height = height_;
    for (int b = 0; b < n; ++b) work.streams[b].end(b + 1 < n);
    for (int b = 1; b < n; ++b) work.streams[0].append(work.streams[b]);
    out.lzw = work.streams[0].bytes();
  } else {
    LzwEncoder cropped(work.code_size);
    for (int y = 0; y < out.height; ++y) {
      const uint8_t* row = &work.indices[static_cast<size_t>(y + min_y) * width_ + min_x];
      for (int x = 0; x < out.width; ++x) cropped.put(row[x]);
    }
    out.lzw = cropped.finish();
  }
  out.code_size = work.code_size;
  if (work.context.can_keep) out.transparent = work.context.transparent;
  out.palette = work.palette.colors;
  out.palette.resize(static_cast<size_t>(1) << work.code_size, Rgb{0, 0, 0});
  return out;
}

}  // namespace sdinterp::sinks
