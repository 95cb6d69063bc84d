// links: crypto/*.c db/*.c build/gen/migrations.c
/* Unit tests of db/seal.c's pure parts: the per-term reservations and when a reservation asks for a new term. */
#include "db/seal.c"

#include "tests/unit/check_main.h"

START_TEST(test_budget_two_terms_side_by_side)
{
	memset(budget, 0, sizeof(budget));
	ck_assert_int_eq(budget_take(1), DB_ERR_NEED_BUDGET);
	budget_add_locked(1, 2);
	ck_assert_int_eq(budget_take(1), DB_OK);
	/* A rotation: requests of the new term reserve without throwing the old term's block away. */
	budget_add_locked(2, 3);
	ck_assert_int_eq(budget_take(2), DB_OK);
	ck_assert_int_eq(budget_take(1), DB_OK);
	ck_assert_int_eq(budget_take(1), DB_ERR_NEED_BUDGET);
	ck_assert(budget_has_locked(2));
	budget_add_locked(2, 1);
	ck_assert_uint_eq(budget[0].term == 2 ? budget[0].left : budget[1].left, 3);
	/* A third term takes the lowest term's slot: term 1 has nothing left to lose there. */
	budget_add_locked(3, 1);
	ck_assert(!budget_has_locked(1));
	ck_assert(budget_has_locked(2));
	ck_assert_int_eq(budget_take(3), DB_OK);
	ck_assert_int_eq(budget_take(3), DB_ERR_NEED_BUDGET);
}
END_TEST

START_TEST(test_advance_wanted)
{
	/* Below the threshold and current: nothing. */
	ck_assert_int_eq(advance_wanted(1, 1, 16383, 16384), ADVANCE_NONE);
	/* At or past it: a new term is asked for. */
	ck_assert_int_eq(advance_wanted(1, 1, 16384, 16384), ADVANCE_ROTATE);
	ck_assert_int_eq(advance_wanted(1, 1, 20480, 16384), ADVANCE_ROTATE);
	/* Someone rotated already: only a reload, however far past the threshold the old term is. */
	ck_assert_int_eq(advance_wanted(1, 2, 20480, 16384), ADVANCE_RELOAD);
	ck_assert_int_eq(advance_wanted(1, 2, 10, 16384), ADVANCE_RELOAD);
	/* 0: never rotates by count. */
	ck_assert_int_eq(advance_wanted(1, 1, UINT64_C(1) << 31, 0), ADVANCE_NONE);
}
END_TEST

CMF_CHECK_SUITE("seal_budget", test_budget_two_terms_side_by_side, test_advance_wanted);
