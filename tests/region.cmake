# The pager's own suites: bytes, budget, failure, lifecycle, settings.
flexpage_test(test_region test_region.c region_util.c)
target_link_libraries(test_region PRIVATE flexpage_pager)
flexpage_test(test_sim test_sim.c region_util.c)
target_link_libraries(test_sim PRIVATE flexpage_pager)
flexpage_test(test_crc test_crc.c)
target_link_libraries(test_crc PRIVATE flexpage_pager)
flexpage_test(test_plan test_plan.c region_util.c)
target_link_libraries(test_plan PRIVATE flexpage_pager)
