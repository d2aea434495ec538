# flexpage trace (the paging lab): summary, histograms, Chrome JSON and
# plots, run as a program on a trace recorded through libflexpage.
# Included by tests/CMakeLists.txt, which defines flexpage_test().
flexpage_test(test_trace_tool test_trace_tool.c)
target_link_libraries(test_trace_tool PRIVATE flexpage_pager)
add_dependencies(test_trace_tool flexpage)
set_tests_properties(test_trace_tool PROPERTIES TIMEOUT 120)
