/** Reading weights: models on disk, discovery of inputs, and the tensor catalogue. */
export { openModel, readHeader, idFromFile, type Model, type TensorInfo } from './model.js';
export { describeFolder, discoverModels, isModelReadError, openModels, type DiscoverOptions, type ModelRef } from './discover.js';
export {
  buildCatalogue,
  catalogueGroup,
  groupByArchitecture,
  jobTensors,
  globToRegExp,
  matrixView,
  type ArchitectureGroup,
  type CatalogueTensor,
  type SelectOptions,
} from './catalogue.js';
