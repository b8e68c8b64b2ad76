// The GIF encoder's parts: exact nearest-colour search (against brute force, float queries
// right at cell borders included), LZW streams joined from bands (decoded by giflib), and the
// palette builder's lossless and stable cases.
#include <gif_lib.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "sink_test_util.h"
#include "sinks/lzw.h"
#include "sinks/quantize.h"

namespace sdinterp::sinks {
namespace {

float brute_force_distance(const std::vector<Rgb>& palette, float r, float g, float b) {
  float best = std::numeric_limits<float>::max();
  for (const Rgb& c : palette) {
    float d = (r - c[0]) * (r - c[0]) + (g - c[1]) * (g - c[1]) + (b - c[2]) * (b - c[2]);
    best = std::min(best, d);
  }
  return best;
}

float distance(const Rgb& c, float r, float g, float b) {
  return (r - c[0]) * (r - c[0]) + (g - c[1]) * (g - c[1]) + (b - c[2]) * (b - c[2]);
}

TEST(NearestColor, MatchesBruteForce) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> level(0, 255);
  std::uniform_real_distribution<float> query(-20.f, 275.f);
  for (int size : {1, 2, 16, 255}) {
    std::vector<Rgb> palette(size);
    for (Rgb& c : palette) {
      c = {static_cast<uint8_t>(level(rng)), static_cast<uint8_t>(level(rng)), static_cast<uint8_t>(level(rng))};
    }
    NearestColor nearest(palette);
    // The same palette for a few lookups: every entry scanned, no cells. It must give the very
    // same entries (ties included), so that a frame's bytes do not depend on its size.
    NearestColor scan(palette, 1);
    for (int i = 0; i < 20000; ++i) {
      float r = query(rng), g = query(rng), b = query(rng);
      if (i % 3 == 0) r = std::floor(r / 4) * 4 + 3.999f;  // just below a fine cell's border
      int k = nearest.find(r, g, b);
      float cr = std::clamp(r, 0.f, 255.f), cg = std::clamp(g, 0.f, 255.f), cb = std::clamp(b, 0.f, 255.f);
      ASSERT_FLOAT_EQ(distance(palette[k], cr, cg, cb), brute_force_distance(palette, cr, cg, cb))
          << "palette of " << size << ", query " << r << " " << g << " " << b;
      int ir = level(rng), ig = level(rng), ib = level(rng);
      int cached = nearest.find_cached(ir, ig, ib);
      ASSERT_FLOAT_EQ(distance(palette[cached], ir, ig, ib), brute_force_distance(palette, ir, ig, ib));
      int once = nearest.find_once(cr, cg, cb);
      ASSERT_FLOAT_EQ(distance(palette[once], cr, cg, cb), brute_force_distance(palette, cr, cg, cb));
      ASSERT_EQ(scan.find(r, g, b), k);
      ASSERT_EQ(scan.find_cached(ir, ig, ib), cached);
      ASSERT_EQ(scan.find_once(cr, cg, cb), once);
    }
  }
}

// Wraps an LZW code stream into a one-image GIF and decodes it with giflib.
std::vector<uint8_t> decode_with_giflib(const std::vector<uint8_t>& lzw, int width, int height, int code_size) {
  std::vector<uint8_t> file;
  auto write = [](GifFileType* gif, const GifByteType* data, int n) {
    auto* out = static_cast<std::vector<uint8_t>*>(gif->UserData);
    out->insert(out->end(), data, data + n);
    return n;
  };
  int error = 0;
  GifFileType* gif = EGifOpen(&file, write, &error);
  std::vector<GifColorType> colors(static_cast<size_t>(1) << code_size, GifColorType{0, 0, 0});
  ColorMapObject* map = GifMakeMapObject(static_cast<int>(colors.size()), colors.data());
  EGifPutScreenDesc(gif, width, height, 8, 0, nullptr);
  EGifPutImageDesc(gif, 0, 0, width, height, false, map);
  GifFreeMapObject(map);
  GifByteType block[256];
  for (size_t at = 0; at < lzw.size(); at += 255) {
    size_t n = std::min<size_t>(255, lzw.size() - at);
    block[0] = static_cast<GifByteType>(n);
    std::memcpy(block + 1, lzw.data() + at, n);
    EGifPutCodeNext(gif, block);
  }
  EGifPutCodeNext(gif, nullptr);
  EGifCloseFile(gif, &error);

  struct Reader {
    const std::vector<uint8_t>* bytes;
    size_t at;
  } reader{&file, 0};
  auto read = [](GifFileType* g, GifByteType* data, int n) {
    auto* r = static_cast<Reader*>(g->UserData);
    int k = static_cast<int>(std::min<size_t>(static_cast<size_t>(n), r->bytes->size() - r->at));
    std::memcpy(data, r->bytes->data() + r->at, static_cast<size_t>(k));
    r->at += static_cast<size_t>(k);
    return k;
  };
  GifFileType* in = DGifOpen(&reader, read, &error);
  EXPECT_NE(in, nullptr);
  EXPECT_EQ(DGifSlurp(in), GIF_OK);
  std::vector<uint8_t> pixels(in->SavedImages[0].RasterBits, in->SavedImages[0].RasterBits + width * height);
  DGifCloseFile(in, &error);
  return pixels;
}

TEST(LzwEncoder, BandsJoinIntoOneStream) {
  const int width = 97, height = 60;
  std::mt19937 rng(3);
  for (int code_size : {2, 5, 8}) {
    for (int bands : {1, 2, 3}) {
      std::vector<uint8_t> pixels(width * height);
      // Runs and noise: the dictionary both grows long strings and fills up.
      for (size_t i = 0; i < pixels.size(); ++i) {
        pixels[i] = static_cast<uint8_t>(i % 7 < 3 ? (i / 50) % (1 << code_size) : rng() % (1u << code_size));
      }
      std::vector<LzwEncoder> streams;
      for (int b = 0; b < bands; ++b) {
        streams.emplace_back(code_size, b > 0);
        int y0 = height * b / bands, y1 = height * (b + 1) / bands;
        for (int i = y0 * width; i < y1 * width; ++i) streams[b].put(pixels[i]);
      }
      for (int b = 0; b < bands; ++b) streams[b].end(b + 1 < bands);
      for (int b = 1; b < bands; ++b) streams[0].append(streams[b]);
      EXPECT_EQ(decode_with_giflib(streams[0].bytes(), width, height, code_size), pixels)
          << code_size << " bits, " << bands << " bands";
    }
  }
}

TEST(PaletteBuilder, FewColoursAreKeptExactly) {
  PaletteBuilder builder(255);
  Frame frame = test::few_color_frame(64, 64, 40, 1);
  Palette palette = builder.build(frame);
  EXPECT_EQ(palette.colors.size(), 40u);
  EXPECT_EQ(palette.rms_error, 0.f);
}

TEST(PaletteBuilder, ManyColoursUseEveryEntry) {
  // The frame's colours span a 2-D surface of about 255x200 levels: 255 entries leave cells of
  // some 14 levels a side, an RMS distance near 6.
  PaletteBuilder builder(255);
  for (int i = 0; i < 3; ++i) {
    Palette palette = builder.build(test::smooth_frame(128, 96, i));
    ASSERT_EQ(palette.colors.size(), 255u);
    std::vector<Rgb> distinct = palette.colors;
    std::sort(distinct.begin(), distinct.end());
    distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
    EXPECT_GE(distinct.size(), 250u) << "frame " << i;
    EXPECT_LT(palette.rms_error, 8.f) << "frame " << i;
  }
}

TEST(PaletteBuilder, HeldFrameKeepsItsPalette) {
  PaletteBuilder builder(255);
  Frame frame = test::smooth_frame(80, 60, 2);
  Palette first = builder.build(frame);
  Palette again = builder.build(frame);
  EXPECT_EQ(first.colors, again.colors);
}

}  // namespace
}  // namespace sdinterp::sinks
