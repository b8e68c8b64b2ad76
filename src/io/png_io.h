// PNG reading and writing for the sinks and for `sdinterp encode` (stb underneath, kept out of
// every other target's include path).
#pragma once

#include <string>
#include <vector>

#include "sdinterp/frame_sink.h"

namespace sdinterp::io {

// Size of an image file without decoding it. Throws IoError if it is not a readable image.
void read_image_size(const std::string& path, int& width, int& height);

// Decodes a PNG (or any stb-readable image) to 8-bit RGB; alpha is dropped. Throws IoError.
Frame read_image_rgb(const std::string& path);

// An image-morph input: a PNG or JPEG file (by its content) decoded to 8-bit RGB, its alpha (if
// any) composited on white: c' = (c a + 255 (255 - a) + 127) / 255 in integers, and turned as its
// EXIF or XMP orientation says (io/image_orientation.h), as diffusers' load_image. Throws IoError for
// a file that cannot be read, is not PNG or JPEG, or is truncated.
Frame read_input_image(const std::string& path);

// The frame files `encode` and `report` read: each argument as it is, except a folder, which stands
// for its PNG files (.png in any case, hidden ones left out) in natural name order (frame_2 before
// frame_10). IoError for a folder that cannot be listed or holds no PNG file.
std::vector<std::string> frame_files(const std::vector<std::string>& arguments);

// Writes a lossless RGB PNG. Throws IoError.
void write_png(const std::string& path, const Frame& frame);

}  // namespace sdinterp::io
