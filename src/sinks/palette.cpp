// The palette half of GIF quantization (sinks/quantize.h): a frame's colour histogram, the
// initial boxes and the k-means that refines them, one palette per frame.
#include "sinks/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>

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
    NearestColor nearest(centroids, points.size());
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
    NearestColor nearest(palette_.colors, points.size());
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

}  // namespace sdinterp::sinks
