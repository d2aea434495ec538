# flexpage where it is not trusted (test_untrusted.c): the preload library
# in a set-user-ID program, and the pager under an unprivileged user.  The
# probe is linked with libflexpage-preload.so rather than preloaded: the
# dynamic loader drops LD_PRELOAD for a set-user-ID program.
add_executable(preload_secure_probe preload/map_probe.c)
target_link_libraries(preload_secure_probe PRIVATE flexpage_preload Threads::Threads)
flexpage_test(test_untrusted test_untrusted.c region_util.c)
target_link_libraries(test_untrusted PRIVATE flexpage_pager flexpage_testutil)
target_compile_definitions(test_untrusted PRIVATE
  FLEXPAGE_SECURE_PROBE="$<TARGET_FILE:preload_secure_probe>")
add_dependencies(test_untrusted preload_secure_probe flexpage)
