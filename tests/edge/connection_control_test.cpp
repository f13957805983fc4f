// The graceful stop's view of a worker's connections: idle keep-alive ones
// close at drain, busy ones only at close_all; records are counted.
#include "connection_control.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <gtest/gtest.h>

#include <memory>

namespace edge::proxy {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// A connected loopback pair: the server side is what a ConnectionControl closes.
struct Pair {
  tcp::socket server, client;
  explicit Pair(asio::io_context& io, tcp::acceptor& acceptor) : server(io), client(io) {
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
  }
};

TEST(ConnectionControl, DrainClosesIdleConnectionsAndCloseAllTheRest) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  Pair idle(io, acceptor), busy(io, acceptor);
  ConnectionSet set;
  {
    ConnectionControl idle_control(&set, idle.server);
    ConnectionControl busy_control(&set, busy.server);
    EXPECT_EQ(set.size(), 2u);
    EXPECT_EQ(set.unrecorded(), 2u);
    busy_control.set_recorded();
    busy_control.set_recorded();  // once only
    EXPECT_EQ(set.unrecorded(), 1u);
    idle_control.set_idle(true);
    EXPECT_FALSE(busy_control.draining());

    set.drain();
    EXPECT_TRUE(busy_control.draining());
    EXPECT_FALSE(idle.server.is_open());
    EXPECT_TRUE(busy.server.is_open());

    set.close_all();
    EXPECT_FALSE(busy.server.is_open());
  }
  EXPECT_EQ(set.size(), 0u);
  EXPECT_EQ(set.unrecorded(), 0u);  // a connection that ends unrecorded no longer counts
}

TEST(ConnectionControl, WithoutASetNothingIsTracked) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  Pair pair(io, acceptor);
  ConnectionControl control(nullptr, pair.server);
  EXPECT_FALSE(control.draining());
  control.set_recorded();
  control.close();
  EXPECT_FALSE(pair.server.is_open());
}

}  // namespace
}  // namespace edge::proxy
