// Boost.JSON compiled into the fuzz targets that parse JSON (instead of
// linking libboost_json) so that libFuzzer's coverage reaches the parser.
#include <boost/json/src.hpp>
