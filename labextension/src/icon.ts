/** The sidebar's icon: a bento box, drawn in the theme's icon colour. */
import { LabIcon } from '@jupyterlab/ui-components';

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M3 4h18a1 1 0 0 1 1 1v14a1 1 0 0 1-1 1H3a1 1 0 0 1-1-1V5a1 1 0 0 1 1-1zm1 2v5h7V6H4zm9 0v12h7V6h-7zM4 13v5h7v-5H4z"/>
  </g>
</svg>`;

export const bentoIcon = new LabIcon({ name: 'bento-jupyter:bento', svgstr: SVG });
