{
  "targets": [
    {
      "target_name": "vtepd",
      "sources": [
        "native/addon.cc",
        "native/addon_dp.cc",
        "native/addon_tap.cc",
        "native/addon_scm.cc",
        "native/tap.c",
        "native/netns.c",
        "native/attach.c",
        "native/udp.c",
        "native/vxlan.c",
        "native/fdb.c",
        "native/fastpath.c",
        "native/dp_tx.c",
        "native/dp_events.c",
        "native/dp_ctl.c",
        "native/dp_life.c",
        "native/dp_stats.c",
        "native/gre.c",
        "native/rawip.c",
        "native/csum.c",
        "native/gso.c",
        "native/scm.c",
        "native/secure.c",
        "native/dpx.c",
        "native/dp_wire.c"
      ],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags": ["-O2", "-flto", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing", "-pthread"],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=c++17"],
      "cflags!": ["-fno-exceptions"],
      "ldflags": ["-flto=2", "-O2"],
      "libraries": ["-lpthread", "-l:libcrypto.so.3"]
    },
    {
      "target_name": "vtepd-dp",
      "type": "executable",
      "sources": [
        "native/bin/vtepd-dp.c",
        "native/dp_wire.c",
        "native/udp.c",
        "native/vxlan.c",
        "native/fdb.c",
        "native/fastpath.c",
        "native/dp_tx.c",
        "native/dp_events.c",
        "native/dp_ctl.c",
        "native/dp_life.c",
        "native/dp_stats.c",
        "native/gre.c",
        "native/rawip.c",
        "native/csum.c",
        "native/gso.c",
        "native/secure.c"
      ],
      "defines": ["_GNU_SOURCE"],
      "cflags": ["-O2", "-flto", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing", "-pthread"],
      "cflags_c": ["-std=gnu11"],
      "ldflags": ["-flto=2", "-O2", "-pthread"],
      "libraries": ["-lpthread", "-l:libcrypto.so.3"]
    },
    {
      "target_name": "vtepd_test",
      "sources": [
        "native/addon_test.cc",
        "native/testutil.c",
        "native/vxlan.c",
        "native/dp_events.c",
        "native/fdb.c",
        "native/gso.c",
        "native/csum.c"
      ],
      "include_dirs": ["<!@(node -p \"require('node-addon-api').include\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"],
      "cflags": ["-O2", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing", "-pthread"],
      "cflags_c": ["-std=gnu11"],
      "cflags_cc": ["-std=c++17"],
      "cflags!": ["-fno-exceptions"],
      "libraries": ["-lpthread"]
    }
  ]
}
