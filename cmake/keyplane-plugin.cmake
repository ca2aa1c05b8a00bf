# keyplane_add_plugin(): builds a keyplane plugin against the installed SDK (included by
# keyplane-config.cmake). The loader takes a plugin only when it is a shared object named
# <name>.so (no "lib") exporting kp_plugin_init under the ELF version node KEYPLANE_PROVIDER_1;
# this function makes exactly that, so a plugin's CMakeLists.txt needs nothing else:
#
#   find_package(keyplane 0.1 REQUIRED)
#   keyplane_add_plugin(myplugin SOURCES a.c b.c LIBS keyplane::kit-codec)
#
#   keyplane_add_plugin(<name> SOURCES <file>... [LIBS <lib>...] [DESTINATION <dir>]
#                       [NO_INSTALL])
#     <name>       the plugin's name, [a-z0-9_-]+, equal to kp_plugin_info.name; also the
#                  target's name
#     LIBS         linked PRIVATE (keyplane::provider always is)
#     DESTINATION  install directory, default ${CMAKE_INSTALL_LIBDIR}/keyplane/plugins under
#                  CMAKE_INSTALL_PREFIX: keyplane's own plugin directory when that prefix is
#                  keyplane's (KEYPLANE_PLUGIN_DIR names it); else point KEYPLANE_PLUGIN_PATH
#                  or --plugin-dir at it
#     NO_INSTALL   no install rule
include_guard(GLOBAL)

function(keyplane_add_plugin name)
  cmake_parse_arguments(KP "NO_INSTALL" "DESTINATION" "SOURCES;LIBS" ${ARGN})
  if(NOT name MATCHES "^[a-z0-9_-]+$")
    message(FATAL_ERROR "keyplane_add_plugin: \"${name}\" is not a plugin name ([a-z0-9_-]+)")
  endif()
  if(NOT KP_SOURCES)
    message(FATAL_ERROR "keyplane_add_plugin(${name}): no SOURCES")
  endif()
  if(KP_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "keyplane_add_plugin(${name}): unknown arguments ${KP_UNPARSED_ARGUMENTS}")
  endif()
  get_property(map GLOBAL PROPERTY KEYPLANE_PLUGIN_MAP)

  add_library(${name} MODULE ${KP_SOURCES})
  # Hidden by default: only what KP_PLUGIN_EXPORT marks (kp_plugin_init) is even a candidate,
  # and the map then puts it under the version node and makes everything else local.
  set_target_properties(${name} PROPERTIES
    PREFIX "" SUFFIX ".so" OUTPUT_NAME ${name}
    C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON
    LINK_DEPENDS "${map}")
  target_link_libraries(${name} PRIVATE keyplane::provider ${KP_LIBS})
  # --no-undefined: a missing library fails the link here, not the loader at run time.
  target_link_options(${name} PRIVATE "LINKER:--version-script=${map}" "LINKER:--no-undefined")

  if(NOT KP_NO_INSTALL)
    if(NOT KP_DESTINATION)
      if(DEFINED CMAKE_INSTALL_LIBDIR)
        set(KP_DESTINATION ${CMAKE_INSTALL_LIBDIR}/keyplane/plugins)
      else()
        set(KP_DESTINATION lib/keyplane/plugins)
      endif()
    endif()
    install(TARGETS ${name} LIBRARY DESTINATION ${KP_DESTINATION})
  endif()
endfunction()
