/* The in-process floor of a full TLS 1.3 handshake in instructions, for
 * bench/callgrind_handshake.sh: client and server SSL objects of the system
 * OpenSSL joined by a BIO pair, and callgrind collects only while the server
 * side runs (SSL_new, each SSL_do_handshake step, SSL_free), so the count is
 * the library's server cost alone: no kernel, no HTTP, no event loop.
 *
 *   valgrind --tool=callgrind --collect-atstart=no floor_instructions CERT KEY N TICKETS
 * Instruction counts are stable on a shared, noisy machine; time is not. */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <valgrind/callgrind.h>

int main(int argc, char **argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: floor_instructions CERT KEY N TICKETS\n");
    return 2;
  }
  long const n = atol(argv[3]);
  SSL_CTX *sctx = SSL_CTX_new(TLS_server_method()), *cctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(sctx, TLS1_3_VERSION);
  SSL_CTX_set_min_proto_version(cctx, TLS1_3_VERSION);
  SSL_CTX_set1_groups_list(sctx, "X25519");
  SSL_CTX_set1_groups_list(cctx, "X25519");
  if (SSL_CTX_use_certificate_chain_file(sctx, argv[1]) != 1 ||
      SSL_CTX_use_PrivateKey_file(sctx, argv[2], SSL_FILETYPE_PEM) != 1) {
    ERR_print_errors_fp(stderr);
    return 1;
  }
  SSL_CTX_set_num_tickets(sctx, (size_t)atoi(argv[4]));
  SSL_CTX_set_session_cache_mode(cctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
  long ok = 0;
  for (long i = 0; i < n + 10; i++) { /* the first 10 warm up, not collected */
    int const collect = i >= 10;
    if (collect) CALLGRIND_TOGGLE_COLLECT;
    SSL *s = SSL_new(sctx);
    if (collect) CALLGRIND_TOGGLE_COLLECT;
    SSL *c = SSL_new(cctx);
    BIO *bc, *bs;
    BIO_new_bio_pair(&bc, 0, &bs, 0);
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    int cd = 0, sd = 0;
    for (int step = 0; step < 20 && !(cd && sd); step++) {
      if (!cd) {
        int r = SSL_do_handshake(c);
        if (r == 1) cd = 1;
        else if (SSL_get_error(c, r) != SSL_ERROR_WANT_READ) break;
      }
      if (!sd) {
        if (collect) CALLGRIND_TOGGLE_COLLECT;
        int r = SSL_do_handshake(s);
        if (collect) CALLGRIND_TOGGLE_COLLECT;
        if (r == 1) sd = 1;
        else if (SSL_get_error(s, r) != SSL_ERROR_WANT_READ) break;
      }
    }
    char b[64];
    SSL_read(c, b, sizeof b); /* the client takes its ticket(s) */
    if (!(cd && sd)) {
      ERR_print_errors_fp(stderr);
      return 1;
    }
    if (collect) {
      ok++;
      CALLGRIND_TOGGLE_COLLECT;
    }
    SSL_free(s);
    if (collect) CALLGRIND_TOGGLE_COLLECT;
    SSL_free(c);
  }
  printf("RESULT handshakes=%ld\n", ok);
  return 0;
}
