#!/usr/bin/env bash
# Builds and tests the C# SDK with Mono (mcs, NUnit 2.6), as on Debian:
#   apt-get install mono-complete nunit-console
#
#   clients/sdk-csharp/build.sh
#   RSGAME_SDK_SERVER=http://127.0.0.1:8888 clients/sdk-csharp/build.sh   # with the integration tests
#
# 1. tools/gen.py --check: the generated files match proto/game.proto, docs/openapi.json and
#    docs/errors.md; 2. build/Rsgame.Client.dll; 3. build/Rsgame.Client.Tests.dll; 4. NUnit.
# Exits non-zero when any step or any test fails. Integration tests without RSGAME_SDK_SERVER
# are ignored (reported, not failed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

python3 tools/gen.py --check

# NUnit 2.6's framework: Debian's package puts it in /usr/lib/cli/nunit.framework-2.6.x.
nunit_framework=""
for f in /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll /usr/lib/mono/gac/nunit.framework/2.6*/nunit.framework.dll; do
    if [ -f "$f" ]; then nunit_framework="$f"; break; fi
done
nunit_console=/usr/lib/nunit/nunit-console.exe
if [ -z "$nunit_framework" ] || [ ! -f "$nunit_console" ]; then
    echo "build.sh: NUnit 2.6 is missing (apt-get install nunit-console)" >&2
    exit 1
fi

mkdir -p build
# C# 7.2 is the highest mcs 6.8 knows; the SDK keeps to it, so Unity 2021+ and .NET Standard
# 2.1 compile it unchanged. 1591: public members without XML docs (generated REST fields).
mcs -target:library -langversion:7.2 -debug -warnaserror -nowarn:1591 \
    -out:build/Rsgame.Client.dll -doc:build/Rsgame.Client.xml \
    -r:System.dll -r:System.Core.dll -r:System.Net.Http.dll \
    src/*.cs src/Generated/*.cs

mcs -target:library -langversion:7.2 -debug -nowarn:1591 \
    -out:build/Rsgame.Client.Tests.dll \
    -r:build/Rsgame.Client.dll -r:"$nunit_framework" \
    -r:System.dll -r:System.Core.dll -r:System.Net.Http.dll \
    tests/*.cs
cp "$nunit_framework" build/

status=0
(cd build && mono "$nunit_console" -nologo -labels Rsgame.Client.Tests.dll -xml=TestResult.xml) || status=$?

# Name every test and its result, so that a caller (bin/rsgame/tests/sdk_csharp.rs) can check
# that the integration tests ran rather than being ignored.
if [ -f build/TestResult.xml ]; then
    python3 - build/TestResult.xml <<'EOF'
import sys
import xml.etree.ElementTree as ET

for case in ET.parse(sys.argv[1]).iter("test-case"):
    if case.get("executed") != "True":
        print(f"ignored: {case.get('name')}")
    elif case.get("success") == "True":
        print(f"passed: {case.get('name')}")
    else:
        print(f"FAILED: {case.get('name')}")
EOF
fi
if [ "$status" -ne 0 ]; then
    echo "build.sh: tests failed (nunit-console exit $status)" >&2
fi
exit "$status"
