// The one exception type of tigon: every failure a user can cause (bad source, bad
// arguments, a config that cannot fit, a driver error) becomes a tigon::Error with a message
// that names what failed and why.
#pragma once
#include <stdexcept>
#include <string>

namespace tigon {
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
}  // namespace tigon
