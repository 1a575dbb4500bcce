// The exception type of tigon: every failure a user can cause (bad source, bad arguments, a
// config that cannot fit, a driver error) becomes a tigon::Error with a message that names
// what failed and why. Running out of memory is an OutOfMemory, a kind of Error that no
// config or input is to blame for: the autotuner does not reject a config for it, and the op
// layer raises it as torch.OutOfMemoryError.
#pragma once
#include <stdexcept>
#include <string>

namespace tigon {
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct OutOfMemory : Error {
  using Error::Error;
};
}  // namespace tigon
