# flexpage prune (EvoP layer pruning): the search against exhaustive
# search and CCDS, the pruned model against the float64 reference with
# those layers skipped, bad input.  Included by tests/CMakeLists.txt after
# runtime.cmake, which defines flexpage_rt_testutil.
flexpage_test(test_prune_search test_prune_search.c ref_forward.c prune_fixture.c)
target_link_libraries(test_prune_search PRIVATE flexpage_rt_testutil)
add_dependencies(test_prune_search flexpage)

flexpage_test(test_prune_model test_prune_model.c ref_forward.c prune_fixture.c)
target_link_libraries(test_prune_model PRIVATE flexpage_rt_testutil)
add_dependencies(test_prune_model flexpage)

flexpage_test(test_prune_errors test_prune_errors.c prune_fixture.c)
target_link_libraries(test_prune_errors PRIVATE flexpage_rt_testutil)
add_dependencies(test_prune_errors flexpage)
