// Store: migrations, idempotent insert, ownership, persistence across reopen.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "store.hpp"

using namespace vigil;
using namespace vigil::controller;

namespace {
struct TempDb {
  std::filesystem::path path;
  TempDb() {
    char tmpl[] = "/tmp/vigil-store-XXXXXX";
    path = std::filesystem::path(mkdtemp(tmpl)) / "v.db";
  }
  ~TempDb() { std::filesystem::remove_all(path.parent_path()); }
};

Event ev(EventType t, std::uint32_t job) {
  Event e;
  e.id = new_event_id();
  e.type = t;
  e.ts_ns = 1000;
  e.job = job;
  return e;
}
}  // namespace

TEST(Store, MigratesAndInsertsIdempotently) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok()) << s.error().what();
  EXPECT_EQ((*s)->schema_version(), kSchemaVersion);
  Event e = ev(EventType::step_start, 7);
  e.attrs = {{"uid", 1001}, {"user", "alice"}};
  ASSERT_TRUE((*s)->begin().ok());
  EXPECT_EQ(*(*s)->insert(e, 0, 5), InsertOutcome::stored);
  EXPECT_EQ(*(*s)->insert(e, 0, 6), InsertOutcome::duplicate);
  ASSERT_TRUE((*s)->commit().ok());
  EXPECT_EQ((*s)->event_count(), 1);
  EXPECT_EQ((*s)->job_owner(7), 1001u);
  EXPECT_FALSE((*s)->job_owner(8).has_value());
}

TEST(Store, OwnershipOnlyFromRoot) {
  TempDb db;
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  Event e = ev(EventType::step_start, 9);
  e.attrs = {{"uid", 0}};
  ASSERT_TRUE((*s)->begin().ok());
  ASSERT_TRUE((*s)->insert(e, 1001, 1).ok());  // a user claiming root's job: no ownership
  ASSERT_TRUE((*s)->commit().ok());
  EXPECT_FALSE((*s)->job_owner(9).has_value());
}

TEST(Store, SurvivesReopenAndRollbackLosesNothingCommitted) {
  TempDb db;
  Event a = ev(EventType::heartbeat, 1), b = ev(EventType::heartbeat, 1);
  {
    auto s = Store::open(db.path);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->begin().ok());
    ASSERT_TRUE((*s)->insert(a, 0, 1).ok());
    ASSERT_TRUE((*s)->commit().ok());
    ASSERT_TRUE((*s)->begin().ok());
    ASSERT_TRUE((*s)->insert(b, 0, 1).ok());
    (*s)->rollback();
  }
  auto s = Store::open(db.path);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->event_count(), 1);
  auto evs = (*s)->events(1u, 0, 10, std::nullopt);
  ASSERT_TRUE(evs.ok());
  ASSERT_EQ(evs->size(), 1u);
  EXPECT_EQ((*evs)[0].event.id, a.id);
}
