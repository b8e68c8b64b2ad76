// --pace even: where a segment's frames go so that consecutive frames are equally far apart. No
// torch. A segment's frames were rendered at weights t (0 at the first, 1 at the last, which stay
// where they are) and measured: distances[j] between frames j and j + 1. The cumulative distance is
// taken as piecewise linear in t and inverted at equal steps.
#pragma once

#include <vector>

namespace sdinterp {

// The new weights (the ends kept); `t` unchanged when the segment does not move (all distances 0)
// or `t` does not increase.
std::vector<double> even_weights(const std::vector<double>& t, const std::vector<double>& distances);

}  // namespace sdinterp
