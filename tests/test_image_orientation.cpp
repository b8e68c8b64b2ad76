// Image-morph inputs turned upright by their EXIF/XMP orientation, as diffusers' load_image (PIL's
// exif_transpose) turns them: io::image_orientation reads the tag from a PNG's or JPEG's bytes and
// io::oriented applies it. tests/python/test_image_morph.py checks whole morphs against PIL.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "io/image_orientation.h"
#include "io/png_io.h"
#include "sink_test_util.h"

namespace sdinterp {
namespace {

using io::image_orientation;

// A frame whose every pixel differs: (x, y) holds (x, y, 7).
Frame numbered(int width, int height) {
  Frame f;
  f.width = width;
  f.height = height;
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) f.rgb.insert(f.rgb.end(), {uint8_t(x), uint8_t(y), 7});
  }
  return f;
}

// PIL's transposes built from three plain ones, apart from io::oriented's own index arithmetic.
Frame flip_left_right(const Frame& f) {
  Frame out = f;
  for (int y = 0; y < f.height; ++y)
    for (int x = 0; x < f.width; ++x)
      for (int c = 0; c < 3; ++c) out.rgb[(y * f.width + x) * 3 + c] = f.rgb[(y * f.width + f.width - 1 - x) * 3 + c];
  return out;
}
Frame flip_top_bottom(const Frame& f) {
  Frame out = f;
  for (int y = 0; y < f.height; ++y)
    for (int x = 0; x < f.width; ++x)
      for (int c = 0; c < 3; ++c)
        out.rgb[(y * f.width + x) * 3 + c] = f.rgb[((f.height - 1 - y) * f.width + x) * 3 + c];
  return out;
}
Frame transpose(const Frame& f) {
  Frame out = f;
  out.width = f.height;
  out.height = f.width;
  for (int y = 0; y < out.height; ++y)
    for (int x = 0; x < out.width; ++x)
      for (int c = 0; c < 3; ++c) out.rgb[(y * out.width + x) * 3 + c] = f.rgb[(x * f.width + y) * 3 + c];
  return out;
}

TEST(ImageOrientation, EachValueTurnsAsPil) {
  const Frame stored = numbered(5, 3);
  // 6 (ROTATE_270, a quarter turn clockwise) is a transpose then a left-right mirror; 8 (ROTATE_90)
  // a transpose then a top-bottom mirror; 7 (TRANSVERSE) a transpose then a half turn.
  const std::vector<Frame> expected = {stored,
                                       stored,
                                       flip_left_right(stored),
                                       flip_top_bottom(flip_left_right(stored)),
                                       flip_top_bottom(stored),
                                       transpose(stored),
                                       flip_left_right(transpose(stored)),
                                       flip_top_bottom(flip_left_right(transpose(stored))),
                                       flip_top_bottom(transpose(stored))};
  for (int o = 1; o <= 8; ++o) {
    const Frame got = io::oriented(stored, o);
    EXPECT_EQ(got.width, expected[o].width) << o;
    EXPECT_EQ(got.height, expected[o].height) << o;
    EXPECT_EQ(got.rgb, expected[o].rgb) << "orientation " << o;
  }
  // A quarter turn clockwise: the stored bottom-left pixel (0, 2) is shown top-left.
  const Frame turned = io::oriented(stored, 6);
  EXPECT_EQ(turned.rgb[0], 0);
  EXPECT_EQ(turned.rgb[1], 2);
  for (int o : {0, 9, -1}) EXPECT_EQ(io::oriented(stored, o).rgb, stored.rgb) << o;
}

std::string u16(uint16_t v, bool little) {
  return little ? std::string{char(v & 0xFF), char(v >> 8)} : std::string{char(v >> 8), char(v & 0xFF)};
}
std::string u32(uint32_t v, bool little) {
  return little ? u16(uint16_t(v & 0xFFFF), true) + u16(uint16_t(v >> 16), true)
                : u16(uint16_t(v >> 16), false) + u16(uint16_t(v & 0xFFFF), false);
}
std::string be32(uint32_t v) { return u32(v, false); }

// TIFF (EXIF's layout) whose first IFD holds another tag, then Orientation.
std::string tiff(int orientation, bool little, uint16_t type = 3) {
  std::string t = little ? "II" : "MM";
  t += u16(42, little) + u32(8, little) + u16(2, little);
  t += u16(0x010F, little) + u16(2, little) + u32(4, little) + "Cam" + std::string(1, '\0');  // Make
  t += u16(0x0112, little) + u16(type, little) + u32(1, little);
  t += type == 4 ? u32(uint32_t(orientation), little) : u16(uint16_t(orientation), little) + u16(0, little);
  return t + u32(0, little);
}

std::string jpeg_segment(unsigned marker, const std::string& payload) {
  return std::string{char(0xFF), char(marker)} + u16(uint16_t(payload.size() + 2), false) + payload;
}
std::string jpeg(const std::vector<std::string>& segments) {
  std::string f{char(0xFF), char(0xD8)};
  for (const std::string& s : segments) f += s;
  return f + std::string{char(0xFF), char(0xDA)} + u16(2, false) + "scan data";
}
std::string exif_app1(const std::string& tiff_bytes) {
  return jpeg_segment(0xE1, std::string("Exif\0\0", 6) + tiff_bytes);
}
std::string xmp_packet(const std::string& orientation_markup) {
  return "<x:xmpmeta><rdf:Description " + orientation_markup + "/></x:xmpmeta>";
}
std::string xmp_app1(const std::string& packet) {
  return jpeg_segment(0xE1, std::string("http://ns.adobe.com/xap/1.0/\0", 29) + packet);
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(uint32_t(data.size())) + type + data + be32(0);  // the CRC is not read
}
std::string png(const std::vector<std::string>& chunks) {
  std::string f("\x89PNG\r\n\x1a\n", 8);
  f += png_chunk("IHDR", std::string(13, '\0'));
  for (const std::string& c : chunks) f += c;
  return f + png_chunk("IEND", "");
}
std::string png_xmp(const std::string& packet, char compressed = 0) {
  return png_chunk("iTXt", std::string("XML:com.adobe.xmp\0", 18) + compressed + std::string("\0\0\0", 3) + packet);
}

TEST(ImageOrientation, ReadFromJpegAndPngMetadata) {
  for (bool little : {true, false}) {
    for (int o = 1; o <= 8; ++o) {
      EXPECT_EQ(image_orientation(jpeg({jpeg_segment(0xE0, "JFIF"), exif_app1(tiff(o, little))})), o) << o;
      EXPECT_EQ(image_orientation(png({png_chunk("eXIf", tiff(o, little))})), o) << o;
    }
  }
  EXPECT_EQ(image_orientation(jpeg({exif_app1(tiff(6, true, 4))})), 6) << "a LONG value";
  EXPECT_EQ(image_orientation(png({png_chunk("eXIf", std::string("Exif\0\0", 6) + tiff(8, false))})), 8)
      << "an eXIf chunk that keeps JPEG's Exif header";
  // XMP when there is no EXIF orientation, in either of its spellings.
  EXPECT_EQ(image_orientation(jpeg({xmp_app1(xmp_packet("tiff:Orientation=\"6\""))})), 6);
  EXPECT_EQ(image_orientation(png({png_xmp("<tiff:Orientation>3</tiff:Orientation>")})), 3);
  EXPECT_EQ(image_orientation(png({png_xmp("<tiff:Orientation>3</tiff:Orientation>", 1)})), 1)
      << "compressed XMP is not read";
  // An EXIF orientation wins over the XMP's, as in PIL, even when it says 1.
  EXPECT_EQ(image_orientation(jpeg({exif_app1(tiff(1, true)), xmp_app1(xmp_packet("tiff:Orientation=\"6\""))})), 1);
  EXPECT_EQ(image_orientation(png({png_chunk("eXIf", tiff(5, true)), png_xmp("tiff:Orientation=\"8\"")})), 5);
  // Metadata after the first scan is not the image's.
  EXPECT_EQ(image_orientation(jpeg({}) + exif_app1(tiff(6, true))), 1);
}

TEST(ImageOrientation, MalformedOrMissingMetadataIsUpright) {
  EXPECT_EQ(image_orientation(""), 1);
  EXPECT_EQ(image_orientation("GIF89a"), 1);
  EXPECT_EQ(image_orientation(jpeg({})), 1);
  EXPECT_EQ(image_orientation(png({})), 1);
  EXPECT_EQ(image_orientation(jpeg({exif_app1(tiff(9, true))})), 1) << "out of range";
  EXPECT_EQ(image_orientation(jpeg({exif_app1(tiff(0, false))})), 1);
  EXPECT_EQ(image_orientation(jpeg({exif_app1(tiff(6, true, 4).replace(30, 4, u32(65542, true)))})), 1);
  // Every cut of a tagged file, and an IFD offset or entry count past the end, reads without a
  // fault (AddressSanitizer runs this too).
  const std::string whole_jpeg = jpeg({exif_app1(tiff(6, true))});
  const std::string whole_png = png({png_chunk("eXIf", tiff(6, false))});
  for (size_t n = 0; n < whole_jpeg.size(); ++n) (void)image_orientation(whole_jpeg.substr(0, n));
  for (size_t n = 0; n < whole_png.size(); ++n) (void)image_orientation(whole_png.substr(0, n));
  std::string far = tiff(6, true);
  far.replace(4, 4, u32(0xFFFFFFF0u, true));
  EXPECT_EQ(image_orientation(jpeg({exif_app1(far)})), 1);
  std::string many = tiff(6, true);
  many.replace(8, 2, u16(0xFFFF, true));
  (void)image_orientation(jpeg({exif_app1(many)}));
  std::string huge_chunk = png({png_chunk("eXIf", tiff(6, false))});
  huge_chunk.replace(33, 4, be32(0xFFFFFFF0u));
  EXPECT_EQ(image_orientation(huge_chunk), 1);
}

TEST(ImageOrientation, AnImageMorphInputIsTurnedUpright) {
  test::TempDir dir;
  const Frame stored = numbered(6, 4);
  io::write_png(dir / "plain.png", stored);
  std::ifstream in(dir / "plain.png", std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  std::string file = bytes.str();
  const size_t after_header = 8 + 25;  // the signature and IHDR
  file.insert(after_header, png_chunk("eXIf", tiff(6, false)));
  std::ofstream(dir / "turned.png", std::ios::binary) << file;
  EXPECT_EQ(io::read_input_image(dir / "plain.png").rgb, stored.rgb);
  const Frame got = io::read_input_image(dir / "turned.png");
  EXPECT_EQ(got.width, 4);
  EXPECT_EQ(got.height, 6);
  EXPECT_EQ(got.rgb, flip_left_right(transpose(stored)).rgb);
}

}  // namespace
}  // namespace sdinterp
