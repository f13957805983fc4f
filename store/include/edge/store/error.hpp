#pragma once
// The store's expected-failure type: a message that names the file and what failed.
#include <boost/system/result.hpp>
#include <stdexcept>
#include <string>

namespace edge::store {

struct StoreError {
  std::string message;
};

// Lets result<T, StoreError>::value() throw a readable exception (found by ADL).
[[noreturn]] inline void throw_exception_from_error(StoreError const& e,
                                                    boost::source_location const&) {
  throw std::runtime_error(e.message);
}

template <class T>
using Result = boost::system::result<T, StoreError>;

}  // namespace edge::store
