import { bridgeBehaviours } from './support/bridge-behaviour.js';
import { NativeHarness } from './support/harness.js';

bridgeBehaviours('C fast path', () => NativeHarness.create());
