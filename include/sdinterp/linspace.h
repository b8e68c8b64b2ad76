#pragma once
// Evenly spaced values, in the two formulas whose last bits the reference implementations depend on.

#include <vector>

namespace sdinterp {

// numpy.linspace(start, stop, num): k * step + start, the last value exactly `stop` (diffusers'
// timestep spacings, the walks' interpolation weights). Empty for num <= 0.
std::vector<double> numpy_linspace(double start, double stop, int num);

// torch.linspace's formula, filled from both ends towards the middle (diffusers' beta schedules).
std::vector<double> torch_linspace(double start, double end, int num);

}  // namespace sdinterp
