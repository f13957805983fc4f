#pragma once
// The JSON views of the store that the admin API and edgectl share, so that
// `edgectl certs --json` offline (on the SQLite file) and live (certs.list
// over the admin API) print the same thing.
#include <edge/store/store.hpp>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace edge::admin {

std::int64_t now_seconds();
// RFC 3339 in UTC, e.g. 2025-01-31T12:00:00Z; with millis >= 0, ...:00.042Z.
std::string rfc3339(std::int64_t unix_seconds, int millis = -1);
// Whole days until expiry, rounded down: an hour past expiry is already -1.
std::int64_t days_left(std::int64_t not_after);

// One object per current certificate: identity, validity, handshake counts
// and renewal state (certs.list, edgectl certs --json).
store::Result<boost::json::array> certificate_list(store::Store& store);

// Configured certificates the store has no certificate for yet (a renewal
// state but no current certificate: the first issuance is pending or
// failing): [{name, state, failures, last_attempt, next_attempt, last_error}].
store::Result<boost::json::array> pending_certificates(store::Store& store);

// Everything about one certificate: chain, renewal state, history, orders
// (certs.get, edgectl cert show --json). nullopt when the store knows neither
// a certificate nor a renewal state of that name.
store::Result<std::optional<boost::json::object>> certificate_detail(store::Store& store, std::string const& name);

// What certs.import (and edgectl import) accept: the chain parses, the key is
// the leaf's, and the leaf is valid now. The record is ready for
// put_certificate (source manual); the error says what is wrong.
boost::system::result<store::CertificateRecord, std::string> check_import(std::string const& name,
                                                                           std::string chain_pem,
                                                                           std::string private_key_pem);

}  // namespace edge::admin
