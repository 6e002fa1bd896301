// results_test.cpp — result events: validation and the NaN round trip through
// the store's JSON text.
#include "results.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace vigil::controller {
namespace {

json scalar_attrs(double v) {
  return {{"kind", "scalar"}, {"name", "energy"}, {"stage", "main"}, {"step", 3}, {"sim_t", 1.5}, {"v", v}};
}

TEST(Results, NonFiniteValuesSurviveJsonStorage) {
  for (double v : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    json a = scalar_attrs(v);
    ASSERT_TRUE(normalise_result_attrs(a));
    Event e;
    e.type = EventType::result;
    e.attrs = json::parse(a.dump());  // what the store keeps and gives back
    auto r = result_value(e, 9);
    ASSERT_TRUE(r) << r.error().message;
    if (std::isnan(v)) EXPECT_TRUE(std::isnan(r->value));
    else EXPECT_EQ(r->value, v);
    EXPECT_EQ(r->seq, 9);
  }
}

TEST(Results, ArraysAreCheckedAgainstTheirShape) {
  json a = {{"kind", "array"}, {"name", "t"}, {"step", 1}, {"sim_t", 0.0}, {"dims", {2, 2}},
            {"data", {1.0, 2.0, std::numeric_limits<double>::quiet_NaN(), 4.0}}};
  ASSERT_TRUE(normalise_result_attrs(a));
  EXPECT_EQ(a["stage"], "main") << "v1 SDKs send no stage";
  Event e;
  e.type = EventType::result;
  e.attrs = json::parse(a.dump());
  auto r = result_value(e, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->dims, (std::vector<std::int64_t>{2, 2}));
  EXPECT_TRUE(std::isnan(r->data[2]));
  a["data"].erase(a["data"].begin());
  EXPECT_FALSE(normalise_result_attrs(a));
}

TEST(Results, BadFieldsAreNamed) {
  struct Case {
    const char* field;
    json value;
  } cases[] = {{"name", "a/b"},   {"name", ""},       {"stage", ".."},         {"kind", "tensor"},
               {"step", 1.5},     {"v", "x"},         {"units", std::string(40, 'u')}};
  for (const auto& c : cases) {
    json a = scalar_attrs(1.0);
    a[c.field] = c.value;
    auto s = normalise_result_attrs(a);
    ASSERT_FALSE(s) << c.field;
    EXPECT_NE(s.error().message.find(std::string(c.field) == "v" ? "'v'" : c.field), std::string::npos)
        << s.error().message;
  }
  json big = {{"kind", "array"}, {"name", "t"}, {"step", 1}, {"sim_t", 0.0}, {"dims", {300, 300}},
              {"data", json::array()}};
  EXPECT_FALSE(normalise_result_attrs(big));
}

}  // namespace
}  // namespace vigil::controller
