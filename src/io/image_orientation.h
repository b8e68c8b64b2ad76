// The orientation a photo's metadata asks for (EXIF's Orientation tag, 1 to 8), read from a PNG or
// JPEG file's bytes, and applied as diffusers' load_image applies it (PIL's exif_transpose): a phone
// picture stored sideways is morphed the way it is shown.
#pragma once

#include <string_view>

#include "sdinterp/frame_sink.h"

namespace sdinterp::io {

// The EXIF Orientation of IFD0 in a JPEG's "Exif" APP1 segment or a PNG's eXIf chunk; without one,
// the tiff:Orientation of the XMP packet (a JPEG's XMP APP1 segment, a PNG's uncompressed iTXt
// "XML:com.adobe.xmp"). 1 (as stored) when there is none, or the data is malformed or out of range.
int image_orientation(std::string_view file);

// `frame` turned upright for `orientation` (PIL's transposes: 2 mirror left-right, 3 rotate 180,
// 4 mirror top-bottom, 5 transpose, 6 rotate 90 clockwise, 7 transverse, 8 rotate 90
// counter-clockwise; 5 to 8 swap width and height). Any other value returns the frame as it is.
Frame oriented(const Frame& frame, int orientation);

}  // namespace sdinterp::io
