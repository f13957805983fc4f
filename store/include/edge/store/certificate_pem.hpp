#pragma once
// Turning PEM into a CertificateRecord: parses the chain, reads serial,
// fingerprint, validity and issuer of the leaf, and checks the key matches.
#include <edge/store/error.hpp>
#include <edge/store/records.hpp>

#include <string>

namespace edge::store {

// Fills every field of CertificateRecord except id, generation and created_at.
// Fails when the chain does not parse, the key does not parse, or the key is
// not the leaf's.
Result<CertificateRecord> describe_certificate(std::string name, std::string chain_pem,
                                               std::string private_key_pem,
                                               CertificateSource source);

}  // namespace edge::store
