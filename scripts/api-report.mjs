#!/usr/bin/env node
// The public API of each package entry point (package.json `exports`, except
// `./internal`), as API Extractor reports it, kept in etc/api/*.api.md.
//   node scripts/api-report.mjs          fails when an API changed without its report (CI)
//   node scripts/api-report.mjs --local  rewrites the reports (commit them with the change)
// Needs the packages built (`tsc -b`).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Extractor, ExtractorConfig } from '@microsoft/api-extractor';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const local = process.argv.includes('--local');
const packages = ['core', 'client', 'server', 'react'];

let failed = 0;
for (const pkg of packages) {
  const folder = join(root, 'packages', pkg);
  const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8'));
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    if (subpath === './internal') continue;
    const name = `${pkg}${subpath === '.' ? '' : `-${subpath.slice(2).replaceAll('/', '-')}`}`;
    const config = ExtractorConfig.prepare({
      configObjectFullPath: join(root, 'scripts', 'api-extractor.json'),
      packageJsonFullPath: join(folder, 'package.json'),
      configObject: {
        projectFolder: folder,
        mainEntryPointFilePath: join(folder, target.types),
        compiler: { tsconfigFilePath: join(folder, 'tsconfig.json') },
        apiReport: { enabled: true, reportFileName: `${name}.api.md`, reportFolder: join(root, 'etc', 'api'), reportTempFolder: join(root, 'test-results', 'api') },
        docModel: { enabled: false },
        dtsRollup: { enabled: false },
        tsdocMetadata: { enabled: false },
        messages: {
          compilerMessageReporting: { default: { logLevel: 'warning' } },
          // Findings go into the report (reviewed with it), not onto the console.
          // Missing docs are TypeDoc's check (npm run docs:check); release tags are not used here.
          extractorMessageReporting: {
            default: { logLevel: 'none', addToApiReportFile: true },
            'ae-missing-release-tag': { logLevel: 'none', addToApiReportFile: false },
            'ae-undocumented': { logLevel: 'none', addToApiReportFile: false },
          },
          tsdocMessageReporting: { default: { logLevel: 'none' } },
        },
      },
    });
    const result = Extractor.invoke(config, { localBuild: local, showVerboseMessages: false, messageCallback: (m) => { if (m.logLevel === 'none') m.handled = true; } });
    const what = `${manifest.name}${subpath === '.' ? '' : subpath.slice(1)}`;
    if (result.apiReportChanged && !local) {
      console.error(`✗ ${what}: the public API changed; run \`npm run api -- --local\`, review etc/api/${name}.api.md and commit it`);
      failed++;
    } else if (!result.succeeded) {
      console.error(`✗ ${what}: API Extractor failed (${result.errorCount} errors)`);
      failed++;
    } else {
      console.log(`✓ ${what}${result.apiReportChanged ? ' (report updated)' : ''}`);
    }
  }
}
process.exit(failed ? 1 : 0);
