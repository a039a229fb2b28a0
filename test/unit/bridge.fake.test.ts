import { bridgeBehaviours } from '../support/bridge-behaviour.js';
import { FakeHarness } from '../support/harness.js';

bridgeBehaviours('in-memory fake', async () => new FakeHarness());
